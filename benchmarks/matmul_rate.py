"""How fast one core multiplies the small matrices of a recurrent step, inside an XLA loop as a step runs
them: the LSTM's h U at batch 128 ((128 x 32) x (32 x 128)) and SimpleRNN's at batch 32 ((32 x 32) x
(32 x 32)), GFLOP/s, median of 5 timings (TensorFlow, one thread as `rnn train` sets it):

    python benchmarks/matmul_rate.py
"""

from __future__ import annotations

import os

from timing import median_seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STEPS = 256


def rate(batch: int, units: int, outputs: int) -> float:
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(STEPS, batch, units)).astype("float32"))
    kernel = tf.constant(rng.normal(size=(units, outputs)).astype("float32") * 0.1)

    @tf.function(jit_compile=True)
    def loop():  # each step's product depends on the last, as a recurrence's does
        return tf.scan(lambda h, x: tf.matmul(h, kernel)[:, :units] + x, inputs, initializer=tf.zeros((batch, units)))

    loop()
    return 2 * batch * units * outputs * STEPS / median_seconds(loop, 10, 5) / 1e9


if __name__ == "__main__":
    for name, shape in {"LSTM h U, batch 128": (128, 32, 128), "SimpleRNN h U, batch 32": (32, 32, 32)}.items():
        print(f"{name}: {rate(*shape):.1f} GFLOP/s")
