"""Milliseconds per training batch against batches per call of Keras' compiled loop
(`train.steps_per_execution`), in one process, the settings taking turns so that a noisy machine weighs
on each alike:

    python benchmarks/per_call.py --model simple_rnn --values 1,2,4,8 [--batches 300] [--repeats 8]

The model, optimizer and process settings are `rnn train`'s (rnn_cli.model.build_model, compile_model,
rnn_cli.process_settings.configure); the batches are random token ids in `rnn train`'s bucket lengths
(128-500 tokens, each review padded on the right and masked), fed as `rnn train` feeds them (a tf.data
generator), so a batch's cost includes Python's share. Each turn recompiles Keras' loop for the value and
times the second of two epochs; the median per value is printed with every turn's seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402 - after the log level
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnn_cli.config import load_config  # noqa: E402
from rnn_cli.model import build_model, compile_model  # noqa: E402
from rnn_cli.process_settings import configure_training  # noqa: E402

LENGTHS, SHARES = [128, 256, 384, 500], [0.45, 0.3, 0.15, 0.1]  # roughly IMDB's bucketed batches


class EpochSeconds(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.last = time.perf_counter() - self.started


def dataset(batch_size: int, num_words: int, batches: int):
    rng = np.random.default_rng(0)
    made = []
    for length in rng.choice(LENGTHS, size=batches, p=SHARES):
        x = rng.integers(3, num_words, size=(batch_size, length)).astype("int32")
        x[np.arange(length)[None, :] >= rng.integers(length // 2 + 1, length + 1, size=batch_size)[:, None]] = 0
        made.append((x, rng.integers(0, 2, batch_size).astype("float32"), np.ones(batch_size, "float32")))
    spec = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.float32),
            tf.TensorSpec((None,), tf.float32))
    return (tf.data.Dataset.from_generator(lambda: iter(made), output_signature=spec)
            .apply(tf.data.experimental.assert_cardinality(batches)).prefetch(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="simple_rnn", help="a shipped config's name")
    parser.add_argument("--values", default="1,2,4,8", help="train.steps_per_execution values, comma-separated")
    parser.add_argument("--batches", type=int, default=300, help="batches an epoch")
    parser.add_argument("--repeats", type=int, default=8, help="turns per value")
    args = parser.parse_args()
    config = load_config(f"configs/{args.model}.yaml")
    configure_training(config, "cpu")
    data = dataset(config.train.batch_size, config.data.num_words, args.batches)
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config.model, config.data.num_words)
    compile_model(model, config.train)
    values = [int(v) for v in args.values.split(",")]
    seconds = {value: [] for value in values}
    timer = EpochSeconds()
    for _ in range(args.repeats):
        for value in values:
            model.steps_per_execution, model.train_function = value, None
            model.fit(data, epochs=2, verbose=0, callbacks=[timer])
            seconds[value].append(timer.last)
    print(f"{args.model} on {keras.backend.backend()}, {args.batches} batches of {config.train.batch_size}: "
          "ms per batch by batches per call")
    print("| batches per call | ms per batch (median) | every turn, s an epoch |")
    print("| --- | --- | --- |")
    for value, times in seconds.items():
        print(f"| {value} | {1000 * statistics.median(times) / args.batches:.2f} | "
              f"{', '.join(f'{t:.2f}' for t in times)} |")


if __name__ == "__main__":
    main()
