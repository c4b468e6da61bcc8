"""Where an LSTM's time step goes inside XLA's loop: its training step's recurrence (LSTM(32), inputs of 32,
batch 128, the shipped LSTM's shapes) forward and back, with parts taken away, in µs per time step (TensorFlow,
XLA, one thread as `rnn train` sets it; variants taking turns, median of the repeats):

    python benchmarks/lstm_loop.py --length 250 --repeats 7
    python benchmarks/lstm_loop.py --length 250 --profile   # each variant's XLA operations by kind

- `full`: the step as TensorFlow differentiates it (the products and gates of Keras' LSTM cell);
- `forward`: its forward loop alone;
- `no products`: the same loop and gates with its products (two forward, so four back) replaced by copies of the same
  shapes;
- `forward no products`: that forward alone;
- `one product`: the inputs' and the state's products as one, `[x, h] [W; U]`;
- `written gradient`: the step with its gradient written out (the gates kept from the forward loop, one backward
  loop computing each step's gate gradients, the products into the state, the input and the kernels): checked
  equal to `full`'s gradients first.
"""

from __future__ import annotations

import argparse
import os
import statistics

from timing import median_seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

BATCH, INPUTS, UNITS = 128, 32, 32
VARIANTS = ["full", "forward", "no products", "forward no products", "written gradient", "one product"]
PROFILED = ["products", "stores", "loads", "the rest"]
HOLDERS = ("while", "eager", "tfe_", "__inference", "gradients", "blockuntilready")  # profiler events around XLA's


def cell(x, h, c, kernel, recurrent, bias, products: bool | str):
    """Keras' LSTM cell (implementation 2): the new (h, c) and the four gates after their activations."""
    if products == "one":  # [x, h] [W; U]: one product of twice the depth forward, one back into [x, h]
        z = tf.concat([x, h], 1) @ tf.concat([kernel, recurrent], 0) + bias
    elif products:
        z = x @ kernel + h @ recurrent + bias
    else:  # the same shapes, no product: each gate's slice a copy of x or h (the kernels get no gradient)
        z = tf.concat([x * 0.5, h * 0.5, x, h], 1) + bias
    i, f, g, o = tf.split(z, 4, axis=1)
    i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
    c = f * c + i * g
    return o * tf.tanh(c), c, (i, f, g, o)


def loop(inputs, kernel, recurrent, bias, products: bool | str = True):
    """The last state of the recurrence over time-major `inputs`."""
    steps = inputs.shape[0]
    xs = tf.TensorArray(tf.float32, size=steps).unstack(inputs)

    def body(t, h, c):
        h, c, _ = cell(xs.read(t), h, c, kernel, recurrent, bias, products)
        return t + 1, h, c

    zeros = tf.zeros((inputs.shape[1], UNITS))
    return tf.while_loop(lambda t, *_: t < steps, body, (0, zeros, zeros), maximum_iterations=steps)[1]


@tf.custom_gradient
def written(inputs, kernel, recurrent, bias):
    """`loop` with its gradient written out."""
    steps, batch = inputs.shape[0], inputs.shape[1]
    xs = tf.TensorArray(tf.float32, size=steps).unstack(inputs)
    kept = [tf.TensorArray(tf.float32, size=steps, element_shape=(batch, n)) for n in (4 * UNITS, UNITS, UNITS)]

    def body(t, h, c, gates, cs, hs):
        new_h, new_c, (i, f, g, o) = cell(xs.read(t), h, c, kernel, recurrent, bias, True)
        return t + 1, new_h, new_c, gates.write(t, tf.concat([i, f, g, o], 1)), cs.write(t, new_c), hs.write(t, h)

    zeros = tf.zeros((batch, UNITS))
    _, h, _, gates, cs, hs = tf.while_loop(lambda t, *_: t < steps, body, (0, zeros, zeros, *kept),
                                           maximum_iterations=steps)

    def gradient(upstream):
        def back(t, dh, dc, d_kernel, d_recurrent, d_bias, d_inputs):
            t = t - 1
            i, f, g, o = tf.split(gates.read(t), 4, axis=1)
            c = cs.read(t)
            c_before = tf.where(t > 0, cs.read(tf.maximum(t - 1, 0)), 0.0)
            tanh_c = tf.tanh(c)
            dc = dc + dh * o * (1 - tanh_c * tanh_c)
            dz = tf.concat([dc * g * i * (1 - i), dc * c_before * f * (1 - f), dc * i * (1 - g * g),
                            dh * tanh_c * o * (1 - o)], 1)
            return (t, tf.matmul(dz, recurrent, transpose_b=True), dc * f,
                    d_kernel + tf.matmul(xs.read(t), dz, transpose_a=True),
                    d_recurrent + tf.matmul(hs.read(t), dz, transpose_a=True), d_bias + tf.reduce_sum(dz, 0),
                    d_inputs.write(t, tf.matmul(dz, kernel, transpose_b=True)))

        start = (steps, upstream, tf.zeros_like(upstream), tf.zeros_like(kernel), tf.zeros_like(recurrent),
                 tf.zeros_like(bias), tf.TensorArray(tf.float32, size=steps, element_shape=(batch, INPUTS)))
        *_, d_kernel, d_recurrent, d_bias, d_inputs = tf.while_loop(lambda t, *_: t > 0, back, start,
                                                                     maximum_iterations=steps)
        return d_inputs.stack(), d_kernel, d_recurrent, d_bias

    return h, gradient


def step(variant: str, inputs, weights):
    """A compiled call of `variant` returning its gradients (one number where timed, so nothing is copied out)."""
    recurrence = written if variant == "written gradient" else (
        lambda *args: loop(*args, products="one" if variant == "one product" else "no products" not in variant))

    @tf.function(jit_compile=True)
    def gradients():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.sin(recurrence(inputs, *weights)))
        if variant.startswith("forward"):
            return [loss]
        return [g for g in tape.gradient(loss, [inputs, *weights]) if g is not None]

    return gradients


def profile(call, steps: int) -> dict[str, float]:
    """µs per time step of each kind of XLA operation in five calls of `call`, from TensorFlow's profiler:
    the products, the stores of each step's values for the backward loop and its loads, the rest."""
    import collections
    import glob
    import tempfile

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        for _ in range(5):
            call()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(open(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0], "rb").read())
    kinds = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name.lower()
                if name.startswith(HOLDERS) or "::" in name or "execute" in name:  # calls and loops that hold the rest
                    continue
                kind = ("products" if "matmul" in name or name.startswith("dot") else
                        "stores" if "dynamic-update-slice" in name else
                        "loads" if "dynamic-slice" in name else "the rest")
                kinds[kind] += event.duration_ps / 1e6 / (5 * steps)
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=250, help="time steps")
    parser.add_argument("--calls", type=int, default=5, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=7, help="timings per variant, the variants taking turns")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing, each variant's XLA operations by kind, from TensorFlow's profiler")
    args = parser.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"--variants: {', '.join(sorted(unknown))} unknown; allowed: {', '.join(VARIANTS)}")
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(args.length, BATCH, INPUTS)).astype("float32"))
    weights = [tf.Variable(rng.normal(size=shape).astype("float32") * 0.3)
               for shape in ((INPUTS, 4 * UNITS), (UNITS, 4 * UNITS), (4 * UNITS,))]
    steps = {variant: step(variant, inputs, weights) for variant in variants}
    if "written gradient" in steps:
        expected, got = step("full", inputs, weights)(), steps["written gradient"]()
        worst = max(float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a))) for a, b in zip(expected, got))
        print(f"written gradient against TensorFlow's: largest difference {worst:.1e} of the largest value")
        assert worst < 1e-5, "the written gradient is not TensorFlow's"
    for call in steps.values():
        call()  # compiled before any timing
    if args.profile:
        print(f"| variant | {' | '.join(PROFILED)} | all (µs per time step, profiled) |")
        print("| --- |" + " --- |" * (len(PROFILED) + 1))
        for variant, call in steps.items():
            kinds = profile(call, args.length)
            print(f"| {variant} | " + " | ".join(f"{kinds[kind]:.1f}" for kind in PROFILED)
                  + f" | {sum(kinds.values()):.1f} |")
        return
    timings = {variant: [] for variant in variants}
    for _ in range(args.repeats):
        for variant, call in steps.items():
            timings[variant].append(median_seconds(call, args.calls, 1))
    print(f"| variant | µs per time step ({args.length} steps, batch {BATCH}) |")
    print("| --- | --- |")
    for variant in variants:
        print(f"| {variant} | {statistics.median(timings[variant]) / args.length * 1e6:.1f} |")


if __name__ == "__main__":
    main()
