"""Where a training step's time goes: milliseconds per step of a shipped config's model, at each bucket
length, with one part taken away at a time. Run once per backend (KERAS_BACKEND=jax ...):

    python benchmarks/profile_step.py --model simple_rnn [--lengths 128,256,384,500] [--steps 20]
    python benchmarks/profile_step.py --model simple_rnn --variants "all threads"

The model and optimizer are `rnn train`'s (rnn_cli.model.build_model, compile_model, with the process
settings of `rnn train`: rnn_cli.process_settings.configure), on random token ids of full length, so the mask is
all ones: the cost of a step of that bucket (`--filled 0.8`: each row's last fifth padding, as in a bucket whose
longest review is shorter than its length). Variants, each a fresh model:
  full          the training step as `rnn train` runs it
  keras loop    Keras' own loops: SimpleRNN's input projection inside its loop (rnn_cli.projected takes it
                out), LSTM's and GRU's over every padded step (rnn_cli.recurrence.masked_rnn skips those no
                row keeps)
  autodiff loop the projected loop differentiated by TensorFlow, not with the gradient rnn_cli.recurrence
                writes out
  token rows    the embedding's gradient as TensorFlow gives it, a row per token, to Keras' optimizer (rnn-cli
                sums it per word first: rnn_cli.gradients)
  frozen        the embedding not trained: no gradient into its 10,000 rows and no optimizer update of them
  sgd           plain SGD instead of RMSprop: the optimizer's own arithmetic
  no mask       mask_zero off: the masking of each time step (tf.where / jnp.where on the state)
  forward       the compiled forward pass alone (predict_on_batch's step), no gradient
  all threads   (TensorFlow only) every core for each operation, where `rnn train` chooses one thread
                for a small step (rnn_cli.process_settings.one_thread_for_small_steps); alone in its process
A least-squares line through the lengths splits each variant into a cost per time step (the slope,
the recurrent loop) and a cost per step (the intercept: the embedding update, the optimizer, Keras'
and the runtime's dispatch). The median of --repeats timings of --steps steps, after a warm-up.

What the first step of each length costs (tracing, compiling or loading from the compile folder), one
model trained on each length in turn, as `rnn train`'s first epoch meets its buckets; run it twice with
the same RNN_CLI_COMPILE_CACHE to see a second process:

    python benchmarks/profile_step.py --model simple_rnn --first-calls
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402 - after the log level; KERAS_BACKEND picks the backend
import numpy as np  # noqa: E402

from rnn_cli import model as model_module  # noqa: E402
from rnn_cli import projected  # noqa: E402
from rnn_cli.config import load_config  # noqa: E402
from rnn_cli.model import build_model, compile_model  # noqa: E402
from rnn_cli.process_settings import configure  # noqa: E402
from timing import median_seconds  # noqa: E402

written_gradient, summed_rows = projected.written_gradient, model_module.summed_rows

VARIANTS = ("full", "keras loop", "autodiff loop", "token rows", "frozen", "sgd", "no mask", "forward", "all threads")


def step_seconds(config, variant: str, length: int, steps: int, repeats: int, filled: float = 1.0) -> float:
    """Median seconds per step of one variant at one length."""
    model_config = config.model
    if variant == "frozen":
        model_config = dataclasses.replace(model_config, embedding_trainable=False)
    train_config = config.train
    if variant == "sgd":
        train_config = dataclasses.replace(train_config, optimizer="sgd")
    model = build_model(model_config, config.data.num_words, mask_zero=variant != "no mask")
    projected.written_gradient = (lambda layer: False) if variant == "autodiff loop" else written_gradient
    model_module.summed_rows = (lambda model: model) if variant == "token rows" else summed_rows
    if variant == "keras loop":  # Keras' own layers from the same config: SimpleRNN's input projection in its loop
        model = keras.Model.from_config(model.get_config())
    compile_model(model, train_config)
    batch = train_config.batch_size
    rng = np.random.default_rng(0)
    x = rng.integers(3, config.data.num_words, size=(batch, length)).astype("int32")
    x[:, round(filled * length):] = 0  # padding
    y = rng.integers(0, 2, size=(batch,)).astype("float32")
    if variant == "forward":
        def step():
            return model.predict_on_batch(x)
    else:
        def step():
            return model.train_on_batch(x, y)
    step(), step()  # trace and compile
    return median_seconds(step, steps, repeats)


def first_calls(config, lengths: list[int]) -> str:
    """Seconds of the first and the second training step at each length, on one model."""
    model = build_model(config.model, config.data.num_words, mask_zero=True)
    compile_model(model, config.train)
    rng = np.random.default_rng(0)
    calls = []
    for length in lengths:
        x = rng.integers(3, config.data.num_words, size=(config.train.batch_size, length)).astype("int32")
        y = rng.integers(0, 2, size=(config.train.batch_size,)).astype("float32")
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            seconds.append(time.perf_counter() - start)
        calls.append(f"{length}: first {seconds[0]:.2f} s, then {seconds[1] * 1e3:.0f} ms")
    return "; ".join(calls)


def line(lengths: list[int], seconds: list[float]) -> tuple[float, float]:
    """Least-squares seconds = per_token * length + per_step."""
    slope, intercept = np.polyfit(np.array(lengths, float), np.array(seconds, float), 1)
    return float(slope), float(intercept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="simple_rnn", help="a shipped config's name")
    parser.add_argument("--lengths", default="128,256,384,500")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--filled", type=float, default=1.0, help="the share of each row that is words, the rest "
                        "padding (default: all)")
    parser.add_argument("--first-calls", action="store_true", help="only the first steps' seconds per length")
    parser.add_argument("--variants", default=",".join(VARIANTS[:-1]), help="comma-separated, of: "
                        + ", ".join(VARIANTS) + " (all threads alone: its own process)")
    args = parser.parse_args()
    config = load_config(Path(__file__).resolve().parent.parent / "configs" / f"{args.model}.yaml")
    backend = keras.backend.backend()
    variants = [v for v in args.variants.split(",") if not (v == "all threads" and backend != "tensorflow")]
    if "all threads" in variants and len(variants) > 1:  # the thread count is the process'
        parser.error("--variants 'all threads' runs alone, in a process of its own")
    configure(config.train, "cpu", None if variants == ["all threads"] else config.model, config.data.num_words)
    lengths = [int(n) for n in args.lengths.split(",")]
    if args.first_calls:
        return print(f"{args.model} on {backend}: " + first_calls(config, lengths))
    print(f"{args.model} on {backend}, batch {config.train.batch_size}: ms per step at each length")
    print("| variant | " + " | ".join(str(n) for n in lengths) + " | µs per time step | ms per step |")
    print("| --- |" + " --- |" * (len(lengths) + 2))
    for variant in variants:
        seconds = [step_seconds(config, variant, n, args.steps, args.repeats, args.filled) for n in lengths]
        slope, intercept = line(lengths, seconds)
        print(f"| {variant} | " + " | ".join(f"{s * 1e3:.2f}" for s in seconds)
              + f" | {slope * 1e6:.1f} | {intercept * 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
