"""Epoch time, validation accuracy and peak memory: the plain Keras book recipe against `rnn train`.

Each measurement runs in its own process (so peak memory is its own), after the data cache is
filled (so none pays for encoding the archive), on the same data: the aclImdb archive read by
rnn_cli's loader, the same train/validation split, the book's model and optimizer. The recipe is
the book's code (everything padded to maxlen, no mask, Keras' defaults); `rnn train`'s path is the
library function the command calls, with the shipped config as it is. The first epoch warms up
(tracing, XLA compilation) and is not timed; seconds per epoch is the median of the later ones.
Speed (the default, 5 epochs: the median of 4 timed ones stands up to a noisy shared machine):

    python benchmarks/bench.py --data ../shared/data/aclImdb_v1_labeled.tar.gz [--json OUT]

Accuracy over full trainings, several seeds (best validation accuracy, mean and spread):

    python benchmarks/bench.py --epochs 10 --seeds 3

A variant of `rnn train`'s path against the same recipe (the overrides of `rnn train --set`):

    python benchmarks/bench.py --set train.jit_compile=false

`rnn train`'s path on each Keras backend (no recipe; ratios against the first backend named), on
the CPU, any shipped config:

    python benchmarks/bench.py --backend tensorflow,jax,torch --models simple_rnn,lstm,best

`rnn train`'s path once per value of one config key (ratios against the first value), e.g. the
vocabulary's size:

    python benchmarks/bench.py --vary data.num_words=10000,30000 --models lstm,tuned

Every `rnn train` child starts with an empty compile cache of its own (a temporary
RNN_CLI_COMPILE_CACHE), so its first epoch compiles as on a new machine; `--warm` then trains it
again, the same config and epochs, on the steps the first process left there, and reports both
first-epoch overheads (first epoch minus the median of the later ones): what a `--seeds` run or a
resumed run pays. (A learning-rate schedule is compiled into the step: another number of epochs, or
a tune trial's other rate, is another program.)
"""

from __future__ import annotations

import time

STARTED = time.time()  # before the heavy imports: "time to first batch" counts from here

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A child loads Keras as `rnn train`'s process does, without the libraries Keras only probes for (installed with
# the extras; about 190 MiB and 1.5 s): the recipe's child too, so that both compare code, not what is installed.
# The parent never loads Keras (its --help is instant); KERAS_BACKEND, set by it for a child, picks the backend.
if sys.argv[1:2] == ["--child"]:
    from rnn_cli.process_settings import skip_probed_imports

    skip_probed_imports()

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"
MODELS = {name: ROOT / "configs" / f"{name}.yaml"
          for name in ("simple_rnn", "lstm", "best", "tuned", "stacked_simple_rnn")}
RECIPES = ("simple_rnn", "lstm")  # the book's models; the recipe path has no other
PATHS = ("recipe", "rnn")
BACKENDS = ("tensorflow", "jax", "torch")


def peak_memory_mib() -> float:
    """This process' peak resident set. Linux' VmHWM, not getrusage's ru_maxrss: that one carries the
    parent's peak over fork and exec, so a child would report the bench's own memory when larger."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS reports bytes


def measure_recipe(config, _run_dir) -> list[dict]:
    """The book's code: Sequential model, everything padded to maxlen, model.fit on arrays."""
    import keras

    from rnn_cli.data import load_data

    splits = load_data(config.data)
    pad = lambda reviews: reviews.padded(config.data.maxlen)  # noqa: E731
    recurrent = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM}
    keras.utils.set_random_seed(config.train.seed)
    model = keras.Sequential([
        keras.layers.Embedding(config.data.num_words, 32),
        *[recurrent[layer.type](32) for layer in config.model.layers],
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    timer = epoch_timer()
    history = model.fit(pad(splits.train), splits.train.labels, epochs=config.train.epochs,
                        batch_size=config.train.batch_size,
                        validation_data=(pad(splits.val), splits.val.labels), verbose=0, callbacks=[timer])
    return [{"seconds": seconds, "val_accuracy": accuracy, "first_batch": timer.first_batch}
            for seconds, accuracy in zip(timer.seconds, history.history["val_accuracy"])]


def measure_rnn(config, run_dir) -> list[dict]:
    """`rnn train`'s own path, through the library functions the command calls."""
    from rnn_cli.process_settings import configure_training
    from rnn_cli.training import train

    configure_training(config, "cpu")  # the process settings `rnn train` makes
    timer = epoch_timer()
    result = train(config, run_dir, device="cpu", echo=lambda line: None, progress=False, callbacks=(timer,))
    return [{"seconds": seconds, "val_accuracy": row["val_accuracy"], "first_batch": timer.first_batch}
            for seconds, row in zip(timer.seconds, result.history)]


def epoch_timer():
    """A Keras callback: seconds per epoch, and seconds from process start to the first training batch."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.first_batch = [], None

        def on_epoch_begin(self, epoch, logs=None):
            self.seconds.append(-time.perf_counter())

        def on_train_batch_begin(self, batch, logs=None):
            if self.first_batch is None:
                self.first_batch = time.time() - STARTED

        def on_epoch_end(self, epoch, logs=None):
            self.seconds[-1] += time.perf_counter()

    return EpochTimer()


def child(path: str, model: str, data: str, limit: int | None, epochs: int, seed: int, sets: list[str]) -> None:
    """One measurement in this process; prints its JSON line."""
    from rnn_cli.data import data_overrides
    from rnn_cli.config import load_config

    overrides = [*data_overrides(Path(data), limit), f"train.epochs={epochs}", f"train.seed={seed}"]
    if path == "rnn":
        overrides += sets
    config = load_config(MODELS[model], overrides)
    measure = {"recipe": measure_recipe, "rnn": measure_rnn}[path]
    with tempfile.TemporaryDirectory() as run_dir:
        epochs_seen = measure(config, Path(run_dir))
    print(json.dumps({"path": path, "model": model, "seed": seed, "epochs": epochs_seen,
                      "peak_mib": peak_memory_mib()}))


def warm_cache(data: str) -> None:
    """Encode the data into rnn_cli's cache before measuring: no measured process pays for it
    (building the cache takes more memory than any training here)."""
    from rnn_cli.data import data_overrides
    from rnn_cli.config import load_config
    from rnn_cli.data import load_data

    load_data(load_config(MODELS["simple_rnn"], data_overrides(Path(data), None)).data)


def run_child(path: str, model: str, args, seed: int, backend: str = "tensorflow") -> dict:
    """One measurement in a child process, on an empty compile cache; with --warm, the same training
    again on what the first left there, its epochs under "warm"."""
    with tempfile.TemporaryDirectory() as compiled:
        result = measure_child(path, model, args, seed, backend, compiled)
        if args.warm and path == "rnn":
            warm = measure_child(path, model, args, seed, backend, compiled)
            result["warm"], result["warm_peak_mib"] = warm["epochs"], warm["peak_mib"]
    return result


def measure_child(path: str, model: str, args, seed: int, backend: str, compiled: str) -> dict:
    command = [sys.executable, __file__, "--child", path, "--model", model, "--data", args.data,
               "--epochs", str(args.epochs), "--seed", str(seed)]
    if args.limit:
        command += ["--limit", str(args.limit)]
    for item in [*args.sets, *([f"train.backend={backend}"] if args.backend else [])]:
        command += ["--set", item]
    env = {**os.environ, "KERAS_BACKEND": backend, "RNN_CLI_COMPILE_CACHE": compiled}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        sys.exit(f"{path}/{model}/{backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def overhead(epochs: list[dict]) -> float | None:
    """The first epoch's seconds beyond a later one's (the median of the later ones): compiling, tracing."""
    later = [e["seconds"] for e in epochs[1:]]
    return epochs[0]["seconds"] - statistics.median(later) if later else None


def run_seeds(path: str, model: str, args, backend: str = "tensorflow") -> list[dict]:
    """One path of one model on `backend`, once per seed, each epoch's figures shown as it ends."""
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        runs.append(run_child(path, model, args, seed, backend))
        where = backend if args.backend else path
        print(f"{model}/{where}/seed {seed}: " + ", ".join(
            f"{e['seconds']:.1f}s {e['val_accuracy']:.4f}" for e in runs[-1]["epochs"]), file=sys.stderr)
        if "warm" in runs[-1]:
            print(f"{model}/{where}/seed {seed}/warm: " + ", ".join(
                f"{e['seconds']:.1f}s" for e in runs[-1]["warm"]) + f"; peak {runs[-1]['warm_peak_mib']:.0f} MiB",
                file=sys.stderr)
    return runs


def summarize(runs: list[dict]) -> dict:
    """One path of one model over its seeds: timed s/epoch, best validation accuracy, memory."""
    timed = [e["seconds"] for run in runs for e in run["epochs"][1:]]  # epoch 1 warms up
    best = [max(e["val_accuracy"] for e in run["epochs"]) for run in runs]
    cold = [overhead(run["epochs"]) for run in runs]
    warm = [overhead(run["warm"]) for run in runs if "warm" in run]
    return {"seconds": statistics.median(timed) if timed else None,
            "warmup_seconds": statistics.median(run["epochs"][0]["seconds"] for run in runs),
            "overhead_seconds": statistics.median(cold) if None not in cold else None,
            "warm_overhead_seconds": statistics.median(warm) if warm else None,
            "first_batch_seconds": statistics.median(run["epochs"][0]["first_batch"] for run in runs),
            "best_val_accuracy": statistics.mean(best), "best_val_accuracy_std": std(best),
            "best_val_accuracies": best, "peak_mib": max(run["peak_mib"] for run in runs)}


def std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def table(rows: list[dict]) -> str:
    lines = ["| model | recipe s/epoch | rnn s/epoch | ratio rnn/recipe | recipe best val acc | rnn best val acc "
             "| recipe peak MiB | rnn peak MiB | rnn first batch s | rnn first-epoch overhead s (cold, warm) |",
             "|" + " --- |" * 10]
    for r in rows:
        recipe, rnn = r["recipe"], r["rnn"]
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        lines.append(
            f"| {r['model']} | {seconds(recipe)} | {seconds(rnn)} | {ratio} | {accuracy(recipe)} | "
            f"{accuracy(rnn)} | {recipe['peak_mib']:.0f} | {rnn['peak_mib']:.0f} | {rnn['first_batch_seconds']:.1f} | "
            f"{overheads(rnn)} |")
    return "\n".join(lines)


def backend_table(rows: list[dict], heading: str = "backend") -> str:
    lines = [f"| model | {heading} | s/epoch | ratio to " + rows[0]["backend"] + " | first epoch s | best val acc "
             "| peak MiB | first-epoch overhead s (cold, warm) |", "|" + " --- |" * 8]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        lines.append(f"| {r['model']} | {r['backend']} | {seconds(r['rnn'])} | {ratio} | "
                     f"{r['rnn']['warmup_seconds']:.1f} | {accuracy(r['rnn'])} | {r['rnn']['peak_mib']:.0f} | "
                     f"{overheads(r['rnn'])} |")
    return "\n".join(lines)


def overheads(summary: dict) -> str:
    """The first epoch's overhead on an empty compile cache, and (with --warm) on a filled one."""
    figures = [summary["overhead_seconds"], summary["warm_overhead_seconds"]]
    return ", ".join("-" if figure is None else f"{figure:.1f}" for figure in figures)


def seconds(summary: dict) -> str:
    return "-" if summary["seconds"] is None else f"{summary['seconds']:.1f}"


def accuracy(summary: dict) -> str:
    if len(summary["best_val_accuracies"]) == 1:
        return f"{summary['best_val_accuracy']:.4f}"
    return f"{summary['best_val_accuracy']:.4f} ± {summary['best_val_accuracy_std']:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="aclImdb folder or .tar.gz")
    parser.add_argument("--models", help=f"comma-separated, of: {','.join(MODELS)} (default: {','.join(RECIPES)}; "
                        "with --backend or --vary, simple_rnn,lstm,best)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per training; the first is not timed")
    parser.add_argument("--seeds", type=int, default=1, help="trainings per path and model (seeds 1..N)")
    parser.add_argument("--first-seed", type=int, default=1,
                        help="number seeds from here (add seeds to an earlier run: --seeds 3 --first-seed 4)")
    parser.add_argument("--limit", type=int, help="N train and N test reviews (quick check, not a result)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the rnn path only, as in rnn train (repeatable), "
                             "e.g. --set train.jit_compile=false")
    parser.add_argument("--backend", help="comma-separated Keras backends (tensorflow,jax,torch): the rnn path "
                        "on each, no recipe")
    parser.add_argument("--vary", metavar="KEY=V1,V2", help="the rnn path once per value of one config key, "
                        "no recipe, e.g. --vary data.num_words=10000,30000")
    parser.add_argument("--warm", action="store_true", help="train each rnn child again on the steps the first "
                        "compiled, and report that first epoch's overhead too")
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data = str(Path(args.data).resolve())
    if args.child:
        return child(args.child, args.model, args.data, args.limit, args.epochs, args.seed, args.sets)
    if not Path(args.data).exists():
        sys.exit(f"{args.data}: no such file; pass --data PATH to an aclImdb folder or aclImdb_v1.tar.gz")
    if args.backend and args.vary:  # each compares its own rows against its first; both at once would drop one
        parser.error("--backend and --vary: give one (--vary runs rnn train's path on the default backend)")
    args.models = args.models or ("simple_rnn,lstm,best" if args.backend or args.vary else ",".join(RECIPES))
    if unknown := [model for model in args.models.split(",") if model not in MODELS]:
        parser.error(f"--models {','.join(unknown)}: choose from {','.join(MODELS)}")
    if not (args.backend or args.vary) and (others := [m for m in args.models.split(",") if m not in RECIPES]):
        parser.error(f"--models {','.join(others)}: the book's recipe has only {', '.join(RECIPES)}; "
                     "use --backend for others")
    warm_cache(args.data)
    if args.backend:
        return compare_backends(args)
    if args.vary:
        return compare_values(args)
    rows = []
    for model in args.models.split(","):
        row = {"model": model}
        for path in PATHS:
            runs = run_seeds(path, model, args)
            row[path] = {**summarize(runs), "runs": runs}
        timed = row["recipe"]["seconds"] and row["rnn"]["seconds"]
        row["ratio"] = row["rnn"]["seconds"] / row["recipe"]["seconds"] if timed else None
        rows.append(row)
    if args.sets:
        print("rnn path with " + " ".join(f"--set {item}" for item in args.sets))
    print(table(rows))
    write_report(args, rows)


def compare_backends(args) -> None:
    """`rnn train`'s path per model on each backend, in the order given; ratios to the first."""
    chosen = args.backend.split(",")
    unknown = [name for name in chosen if name not in BACKENDS]
    if unknown:
        sys.exit(f"--backend {','.join(unknown)}: choose from {','.join(BACKENDS)}")
    rows = []
    for model in args.models.split(","):
        first = None
        for backend in chosen:
            runs = run_seeds("rnn", model, args, backend)
            summary = summarize(runs)
            first = first or summary
            ratio = summary["seconds"] / first["seconds"] if summary["seconds"] and first["seconds"] else None
            rows.append({"model": model, "backend": backend, "rnn": {**summary, "runs": runs}, "ratio": ratio})
    print(backend_table(rows))
    write_report(args, rows)


def compare_values(args) -> None:
    """`rnn train`'s path per model once per value of `--vary KEY=V1,V2`, in the order given; ratios to the first."""
    key, sep, values = args.vary.partition("=")
    if not sep or not values:
        sys.exit(f"--vary {args.vary}: expected KEY=V1,V2, e.g. data.num_words=10000,30000")
    rows = []
    for model in args.models.split(","):
        first = None
        for value in values.split(","):
            setting = f"{key}={value}"
            runs = run_seeds("rnn", model, argparse.Namespace(**{**vars(args), "sets": [*args.sets, setting]}))
            summary = summarize(runs)
            first = first or summary
            ratio = summary["seconds"] / first["seconds"] if summary["seconds"] and first["seconds"] else None
            rows.append({"model": model, "backend": setting, "rnn": {**summary, "runs": runs}, "ratio": ratio})
    print(backend_table(rows, heading="setting"))
    write_report(args, rows)


def write_report(args, rows: list[dict]) -> None:
    report = {"data": args.data, "limit": args.limit, "epochs": args.epochs, "seeds": args.seeds,
              "first_seed": args.first_seed, "sets": args.sets, "backend": args.backend, "vary": args.vary,
              "cpu_count": os.cpu_count(), "rows": rows}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
