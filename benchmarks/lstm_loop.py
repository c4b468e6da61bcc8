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
- `written gradient`: the step with its gradient written out (`written`): the forward loop keeps every value the
  backward's arithmetic needs, the backward loop makes each step's gate gradients and its products;
- `written three stacks`: the same keeping three stacks (the backward recomputes the rest);
- `written products after`: the products into the kernels and the inputs as three products after the loop;
- `written input product before`: x W + b for every step in one product before the forward loop, which adds h U.
The written gradients are checked against TensorFlow's first.
"""

from __future__ import annotations

import argparse
import os

from timing import taking_turns

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

BATCH, INPUTS, UNITS = 128, 32, 32
WRITTEN = {"written gradient": {}, "written three stacks": {"keep": "three stacks"},  # `written`'s options
           "written products after": {"products_after": True}, "written input product before": {"projected": True}}
VARIANTS = ["full", "forward", "no products", "forward no products", "one product", *WRITTEN]
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


def written(inputs, kernel, recurrent, bias, keep: str = "every value", products_after: bool = False,
            projected: bool = False):
    """`loop` with its gradient written out. The forward loop keeps for the backward loop, a stack a value, either
    `every value` its arithmetic needs (the four gates, the state before, tanh of the new one, h before) or `three
    stacks` (the gates as one, the new state, h before: the backward recomputes the rest); the backward loop makes
    each step's gate gradients and its product into h, and the products into the kernels and the inputs in it or,
    `products_after`, as three products over every step after it; `projected`: the forward loop reads x W + b,
    made for every step in one product before it (as cuDNN does), and adds h U alone."""

    @tf.custom_gradient
    def recurrence(inputs, kernel, recurrent, bias):
        steps, batch = inputs.shape[0], inputs.shape[1]
        xs = tf.TensorArray(tf.float32, size=steps).unstack(inputs)
        if projected:
            xw = tf.reshape(tf.reshape(inputs, (-1, INPUTS)) @ kernel + bias, (steps, batch, 4 * UNITS))
            xws = tf.TensorArray(tf.float32, size=steps).unstack(xw)
        widths = [UNITS] * 7 if keep == "every value" else [4 * UNITS, UNITS, UNITS]
        stacks = [tf.TensorArray(tf.float32, size=steps, element_shape=(batch, n)) for n in widths]

        def body(t, h, c, *stacks):
            if projected:
                z = xws.read(t) + h @ recurrent
                i, f, g, o = tf.split(z, 4, axis=1)
                gates = (tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o))
                new_c = gates[1] * c + gates[0] * gates[2]
                new_h = gates[3] * tf.tanh(new_c)
            else:
                new_h, new_c, gates = cell(xs.read(t), h, c, kernel, recurrent, bias, True)
            kept = ((*gates, c, tf.tanh(new_c), h) if keep == "every value" else
                    (tf.concat(gates, 1), new_c, h))
            return (t + 1, new_h, new_c, *[stack.write(t, value) for stack, value in zip(stacks, kept)])

        zeros = tf.zeros((batch, UNITS))
        _, h, _, *stacks = tf.while_loop(lambda t, *_: t < steps, body, (0, zeros, zeros, *stacks),
                                         maximum_iterations=steps)

        def kept_at(t):
            """(i, f, g, o, c before, tanh c, h before) at step `t`."""
            if keep == "every value":
                return [stack.read(t) for stack in stacks]
            gates, cs, hs = stacks
            c_before = tf.where(t > 0, cs.read(tf.maximum(t - 1, 0)), 0.0)
            return [*tf.split(gates.read(t), 4, axis=1), c_before, tf.tanh(cs.read(t)), hs.read(t)]

        def gradient(upstream):
            def back(t, dh, dc, *sums):
                t = t - 1
                i, f, g, o, c_before, tanh_c, h_before = kept_at(t)
                dc = dc + dh * o * (1 - tanh_c * tanh_c)
                dz = tf.concat([dc * g * i * (1 - i), dc * c_before * f * (1 - f), dc * i * (1 - g * g),
                                dh * tanh_c * o * (1 - o)], 1)
                if products_after:
                    return t, tf.matmul(dz, recurrent, transpose_b=True), dc * f, sums[0].write(t, dz)
                d_kernel, d_recurrent, d_bias, d_inputs = sums
                return (t, tf.matmul(dz, recurrent, transpose_b=True), dc * f,
                        d_kernel + tf.matmul(xs.read(t), dz, transpose_a=True),
                        d_recurrent + tf.matmul(h_before, dz, transpose_a=True), d_bias + tf.reduce_sum(dz, 0),
                        d_inputs.write(t, tf.matmul(dz, kernel, transpose_b=True)))

            sums = ([tf.TensorArray(tf.float32, size=steps, element_shape=(batch, 4 * UNITS))] if products_after else
                    [tf.zeros_like(kernel), tf.zeros_like(recurrent), tf.zeros_like(bias),
                     tf.TensorArray(tf.float32, size=steps, element_shape=(batch, INPUTS))])
            sums = tf.while_loop(lambda t, *_: t > 0, back, (steps, upstream, tf.zeros_like(upstream), *sums),
                                 maximum_iterations=steps)[3:]
            if not products_after:
                d_kernel, d_recurrent, d_bias, d_inputs = sums
                return d_inputs.stack(), d_kernel, d_recurrent, d_bias
            dz = tf.reshape(sums[0].stack(), (-1, 4 * UNITS))
            h_before = tf.reshape(stacks[-1].stack(), (-1, UNITS))
            return (tf.reshape(tf.matmul(dz, kernel, transpose_b=True), (steps, batch, INPUTS)),
                    tf.matmul(tf.reshape(inputs, (-1, INPUTS)), dz, transpose_a=True),
                    tf.matmul(h_before, dz, transpose_a=True), tf.reduce_sum(dz, 0))

        return h, gradient

    return recurrence(inputs, kernel, recurrent, bias)


def step(variant: str, inputs, weights):
    """A compiled call of `variant` returning its gradients (one number where timed, so nothing is copied out)."""
    if variant in WRITTEN:
        recurrence = lambda *args: written(*args, **WRITTEN[variant])  # noqa: E731
    else:
        products = "one" if variant == "one product" else "no products" not in variant
        recurrence = lambda *args: loop(*args, products=products)  # noqa: E731

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
    for variant in [v for v in variants if v in WRITTEN]:
        expected, got = step("full", inputs, weights)(), steps[variant]()
        worst = max(float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a))) for a, b in zip(expected, got))
        print(f"{variant} against TensorFlow's gradients: largest difference {worst:.1e} of the largest value")
        assert worst < 1e-5, f"{variant}: not TensorFlow's gradients"
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
    seconds = taking_turns(steps, args.calls, args.repeats)
    print(f"| variant | µs per time step ({args.length} steps, batch {BATCH}) |")
    print("| --- | --- |")
    for variant in variants:
        print(f"| {variant} | {seconds[variant] / args.length * 1e6:.1f} |")


if __name__ == "__main__":
    main()
