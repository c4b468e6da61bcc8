"""Epoch time, validation accuracy and peak memory: the plain Keras book recipe against `rnn train`.

Each measurement runs in its own process (so peak memory is its own) on the same data: the
aclImdb archive read by rnn_cli's loader, the same train/validation split, both at the book's
settings. Each trains two epochs; the first is the warm-up (graph tracing, compilation) and the
second is the one timed. Run it as `make bench` or:

    python benchmarks/bench.py --data ../shared/data/aclImdb_v1_labeled.tar.gz [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"
MODELS = {"simple_rnn": ROOT / "configs" / "simple_rnn.yaml", "lstm": ROOT / "configs" / "lstm.yaml"}
EPOCHS = 2  # epoch 1 warms up, epoch 2 is timed


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_recipe(config, _run_dir) -> dict:
    """The book's code: Sequential model, everything padded to maxlen, model.fit on arrays."""
    import keras

    from rnn_cli.data import load_imdb

    splits = load_imdb(config.data)
    pad = lambda reviews: reviews.padded(config.data.maxlen)  # noqa: E731
    recurrent = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM}
    keras.utils.set_random_seed(config.train.seed)
    model = keras.Sequential([
        keras.layers.Embedding(config.data.num_words, 32),
        *[recurrent[layer.type](32) for layer in config.model.layers],
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    seconds = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seconds.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: seconds.__setitem__(-1, seconds[-1] + time.perf_counter()))
    history = model.fit(pad(splits.train), splits.train.labels, epochs=EPOCHS,
                        batch_size=config.train.batch_size,
                        validation_data=(pad(splits.val), splits.val.labels), verbose=0, callbacks=[timer])
    return {"seconds": seconds[-1], "val_accuracy": history.history["val_accuracy"][-1]}


def measure_rnn(config, run_dir) -> dict:
    """`rnn train`'s own path, through the library function the command calls."""
    from rnn_cli.train import train

    result = train(config, run_dir, device="cpu", echo=lambda line: None, progress=False)
    return {"seconds": result.history[-1]["seconds"], "val_accuracy": result.history[-1]["val_accuracy"]}


def child(path: str, model: str, data: str, limit: int | None) -> None:
    """One measurement in this process; prints its JSON line."""
    from rnn_cli.config import load_config

    overrides = ["data.source=aclimdb", f"data.path={json.dumps(data)}", f"train.epochs={EPOCHS}"]
    if limit:
        overrides.append(f"data.limit={limit}")
    config = load_config(MODELS[model], overrides)
    measure = {"recipe": measure_recipe, "rnn": measure_rnn}[path]
    with tempfile.TemporaryDirectory() as run_dir:
        result = measure(config, Path(run_dir))
    print(json.dumps({"path": path, "model": model, **result, "peak_mib": peak_memory_mib()}))


def run_child(path: str, model: str, data: str, limit: int | None) -> dict:
    command = [sys.executable, __file__, "--child", path, "--model", model, "--data", data]
    if limit:
        command += ["--limit", str(limit)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{path}/{model} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| model | recipe s/epoch | rnn s/epoch | ratio rnn/recipe | recipe val acc | rnn val acc "
             "| recipe peak MiB | rnn peak MiB |", "|" + " --- |" * 8]
    for r in rows:
        lines.append(f"| {r['model']} | {r['recipe']['seconds']:.1f} | {r['rnn']['seconds']:.1f} | "
                     f"{r['ratio']:.2f} | {r['recipe']['val_accuracy']:.4f} | {r['rnn']['val_accuracy']:.4f} | "
                     f"{r['recipe']['peak_mib']:.0f} | {r['rnn']['peak_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="aclImdb folder or .tar.gz")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: simple_rnn,lstm")
    parser.add_argument("--limit", type=int, help="N train and N test reviews (quick check, not a result)")
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    parser.add_argument("--child", choices=["recipe", "rnn"], help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = str(Path(args.data).resolve())
    if args.child:
        return child(args.child, args.model, data, args.limit)
    if not Path(data).exists():
        sys.exit(f"{args.data}: no such file; pass --data PATH to an aclImdb folder or aclImdb_v1.tar.gz")
    rows = []
    for model in args.models.split(","):
        recipe, rnn = (run_child(path, model, data, args.limit) for path in ("recipe", "rnn"))
        rows.append({"model": model, "recipe": recipe, "rnn": rnn, "ratio": rnn["seconds"] / recipe["seconds"]})
        print(f"{model}: recipe {recipe['seconds']:.1f}s, rnn {rnn['seconds']:.1f}s", file=sys.stderr)
    print(table(rows))
    report = {"data": data, "limit": args.limit, "cpu_count": os.cpu_count(), "rows": rows}
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
