"""Whether SimpleRNN's training loop gains from doing several time steps per iteration of XLA's loop (a partly
unrolled loop: fewer iterations, each paying the loop's own cost once for k steps). The recurrence of the shipped
SimpleRNN's training step (units 32, batch 32, under a mask; `rnn_cli.recurrence`'s loop with its gradient written
out), forward and back in one XLA-compiled call, k = 1 (rnn-cli's) and the unrolled ones taking turns, µs per time
step, median of the repeats (TensorFlow, one thread as `rnn train` sets it):

    python benchmarks/unrolled.py --length 256 --unroll 1,2,4,8

Every k's gradients are checked against k = 1's first.
"""

from __future__ import annotations

import argparse
import os

from timing import taking_turns

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnn_cli.recurrence import _recurrence  # noqa: E402 - rnn-cli's loop: the k = 1 case

BATCH, UNITS = 32, 32


def chunked_scan(step, elements, initial, k: int, reverse: bool = False):
    """`tf.scan(step, elements, initial, reverse=reverse)` with k steps of `step` in each iteration of its loop (the
    number of steps a multiple of k): every step's carry, stacked."""
    steps = tf.nest.flatten(elements)[0].shape[0]
    grouped = tf.nest.map_structure(lambda a: tf.reshape(a, (steps // k, k, *a.shape[1:])), elements)

    def body(carries, chunk):
        carry = tf.nest.map_structure(lambda a: a[0 if reverse else -1], carries)
        kept = []
        for j in reversed(range(k)) if reverse else range(k):
            carry = step(carry, tf.nest.map_structure(lambda a: a[j], chunk))
            kept.append(carry)
        return tf.nest.map_structure(lambda *a: tf.stack(a), *(kept[::-1] if reverse else kept))

    start = tf.nest.map_structure(lambda a: tf.stack([a] * k), initial)
    stacked = tf.scan(body, grouped, initializer=start, reverse=reverse)
    return tf.nest.map_structure(lambda a: tf.reshape(a, (steps, *a.shape[2:])), stacked)


def unrolled(k: int):
    """`_recurrence(masked=True, dropout=False)` with k time steps per iteration of both its loops."""

    @tf.custom_gradient
    def states_of(inputs, kernel, initial, keep):
        def step(previous, x):
            p_t, keep_t = x
            return tf.where(keep_t, tf.tanh(p_t + tf.matmul(previous, kernel)), previous)

        states = chunked_scan(step, (inputs, keep), initial, k)

        def gradient(upstream):
            def back(carry, x):
                after = carry[1]
                h_t, g_t, keep_t = x
                total = after + g_t
                into_new = tf.where(keep_t, total, tf.zeros_like(total)) * (1.0 - h_t * h_t)
                before = tf.matmul(into_new, kernel, transpose_b=True) + tf.where(keep_t, tf.zeros_like(total), total)
                return into_new, before

            zero = tf.zeros_like(initial)
            into_new, before = chunked_scan(back, (states, upstream, keep), (zero, zero), k, reverse=True)
            previous = tf.concat([initial[None], states[:-1]], 0)
            kernel_gradient = tf.matmul(tf.reshape(previous, (-1, UNITS)), tf.reshape(into_new, (-1, UNITS)),
                                        transpose_a=True)
            return into_new, kernel_gradient, before[0], None

        return states, gradient

    return states_of


def gradients_call(recurrence, inputs, kernel, keep):
    @tf.function(jit_compile=True, autograph=False)
    def call():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            states = recurrence(inputs, tf.convert_to_tensor(kernel), tf.zeros((BATCH, UNITS)), keep)
            loss = tf.reduce_sum(tf.sin(states))
        return tape.gradient(loss, [inputs, kernel])

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=256, help="time steps (a multiple of every k)")
    parser.add_argument("--unroll", default="1,2,4,8", help="comma-separated steps per loop iteration; 1: rnn-cli's")
    parser.add_argument("--calls", type=int, default=20, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=7, help="timings per k, the ks taking turns")
    args = parser.parse_args()
    ks = [int(k) for k in args.unroll.split(",")]
    if bad := [k for k in ks if k < 1 or args.length % k]:
        parser.error(f"--unroll: {bad} do not divide --length {args.length}")
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(args.length, BATCH, UNITS)).astype("float32") * 0.3)
    kernel = tf.Variable(rng.normal(size=(UNITS, UNITS)).astype("float32") * 0.2)
    lengths = rng.integers(args.length // 2, args.length + 1, size=BATCH)  # reviews ending at different steps
    keep = tf.constant((np.arange(args.length)[:, None] < lengths[None])[:, :, None])
    calls = {k: gradients_call(_recurrence(True, False) if k == 1 else unrolled(k), inputs, kernel, keep) for k in ks}
    expected = gradients_call(_recurrence(True, False), inputs, kernel, keep)()
    for k, call in calls.items():
        worst = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(expected, call()))
        print(f"k = {k}: largest difference from rnn-cli's gradients {worst:.1e}")
        assert worst < 1e-5, f"k = {k}: not rnn-cli's gradients"
    seconds = taking_turns(calls, args.calls, args.repeats)
    print(f"| steps per iteration | µs per time step ({args.length} steps, batch {BATCH}, forward and back) |")
    print("| --- | --- |")
    for k in ks:
        print(f"| {k} | {seconds[k] / args.length * 1e6:.1f} |")


if __name__ == "__main__":
    main()
