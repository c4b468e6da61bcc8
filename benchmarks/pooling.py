"""Seconds per training step of a masked (bidirectional) GRU with and without `model.pooling`, with XLA on and off.

A pooled model's last recurrent layer returns every step's output; this measures what that costs on
one backend (run it once per backend: KERAS_BACKEND=jax python benchmarks/pooling.py):

    python benchmarks/pooling.py [--steps 12]

tuned.yaml's shapes: Embedding(10000, 64), GRU(24), batch 32, 384 steps of which 300 are words (the
rest padding, masked). "last" is the final state (no pooling), "mean" rnn_cli's Pooling layer, "keras"
Keras' own GlobalAveragePooling1D, for comparison. The median of `--repeats` timed epochs of `--steps`
steps each, after one warm-up (tracing, compiling).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402 - after the log level
import numpy as np  # noqa: E402

from rnn_cli.config import TrainConfig  # noqa: E402
from rnn_cli.pooling import Pooling  # noqa: E402
from rnn_cli.process_settings import configure  # noqa: E402


def model(kind: str, bidirectional: bool, jit: bool) -> keras.Model:
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10000, 64, mask_zero=True)(tokens)
    layer = keras.layers.GRU(24, return_sequences=kind != "last")
    x = (keras.layers.Bidirectional(layer) if bidirectional else layer)(x)
    if kind == "mean":
        x = Pooling("mean")([x, tokens])
    elif kind == "keras":
        x = keras.layers.GlobalAveragePooling1D()(x)
    built = keras.Model(tokens, keras.layers.Dense(1, activation="sigmoid")(x))
    built.compile("rmsprop", "binary_crossentropy", jit_compile=jit)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure(TrainConfig(), "cpu")
    rng = np.random.default_rng(0)
    x = rng.integers(1, 10000, size=(32 * args.steps, 384)).astype("int32")
    x[:, 300:] = 0
    y = rng.integers(0, 2, size=len(x)).astype("float32")
    backend = keras.backend.backend()
    jits = (True,) if backend == "jax" else (True, False)  # JAX runs uncompiled steps op by op
    print("| backend | XLA | layer | pooling | ms/step |\n| --- | --- | --- | --- | --- |")
    for jit in jits:
        for bidirectional in (True, False):
            for kind in ("last", "mean", "keras"):
                built = model(kind, bidirectional, jit)
                built.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    built.fit(x, y, batch_size=32, epochs=1, verbose=0)
                    times.append((time.perf_counter() - started) / args.steps)
                layer = "Bidirectional(GRU(24))" if bidirectional else "GRU(24)"
                print(f"| {backend} | {'on' if jit else 'off'} | {layer} | {kind} | "
                      f"{statistics.median(times) * 1000:.0f} |", flush=True)


if __name__ == "__main__":
    main()
