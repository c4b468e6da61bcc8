"""Recurrent loops on TensorFlow: LSTM's and GRU's over the steps some review of the batch has, and SimpleRNN's
training loop with its gradient written out.

A bucketed batch is padded up to its bucket's length, and its longest review is often shorter: Keras' loop
still runs every padded step, under the mask that keeps the state as it was. A step at which every row of the
batch is masked changes nothing, so `masked_rnn` loops only over the span of steps where some row is not (its
bounds found from the mask in the graph: one compiled program per bucket length still serves every batch of
it) and fills in the rest as Keras' loop would. The outputs, the states and their gradients are Keras' (tests/
test_projected.py); a full-data epoch runs about a fifth fewer steps, and the shipped LSTM's about a fifth less
time (docs/performance.md). A loop whose length is known only when it runs costs XLA more per step than one of
a fixed length: nothing next to an LSTM's step, as much as the skipped steps save for SimpleRNN's small one,
whose training step keeps its fixed length.

SimpleRNN's training loop: TensorFlow differentiates Keras' loop step by step: each backward step multiplies by
the recurrent kernel and adds `h_(t-1)^T dh_t` into its gradient, two small products per time step. Written
out, the backward loop keeps one product, and the kernel's gradient is one product over all the steps after
the loop (as rnn_cli/projected.py does for the input kernel forwards): 12-23% less time per training step of the
shipped SimpleRNN on this CPU (docs/performance.md). The forward loop computes what Keras' does, operation for
operation; the gradients agree to float32 rounding (tests/test_projected.py).

An LSTM's or GRU's training step (Keras' fused gates, no recurrent dropout: the shipped LSTM and GRUs) runs
`written_rnn`: its loop over the span with the gradient written out, the forward loop keeping every value the
backward loop needs, so that TensorFlow's own stacks (more of them) are not made: 12-16% less time per step of the
LSTM's loop, the same weights to float32 rounding (tests/test_projected.py).

Only the training step takes SimpleRNN's written loop (a training step of fixed length: the span costs it more
than it saves). Its forward pass (inference, validation, export) runs `masked_rnn` under a mask, as the LSTM's
does, so that validation may pad every batch to one length (rnn_cli/training.py); plain TensorFlow operations,
which a SavedModel keeps.
"""

from __future__ import annotations

import tensorflow as tf


def _span(keep):
    """(first, stop): the steps [first, stop) of a time-major mask (steps, batch) holding every step where some
    row is kept; (0, 0) when none is."""
    kept = tf.reduce_any(keep, axis=1)
    steps = tf.range(tf.shape(keep)[0])
    stop = tf.reduce_max(tf.where(kept, steps + 1, 0))
    return tf.minimum(tf.reduce_min(tf.where(kept, steps, stop)), stop), stop


def _steps(inputs):
    """The number of steps of time-major `inputs`: known when traced for one shape, a tensor when Keras traces
    for any length (XLA still compiles each length's program with it known)."""
    return inputs.shape[0] if inputs.shape[0] is not None else tf.shape(inputs)[0]


def masked_rnn(step, inputs, initial_states, mask, *, go_backwards: bool, zero_output_for_mask: bool,
               return_all_outputs: bool):
    """What `keras.src.backend.rnn` returns for `step` over batch-major `inputs` under `mask` (not unrolled):
    (last output, outputs, states), running `step` only over the span of steps some row keeps."""
    inputs, keep, (first, stop) = _time_major(inputs, mask, go_backwards)
    steps = _steps(inputs)
    # Keras' loop calls the step once before looping, for the output's shape; the cell draws its dropout
    # masks there, outside the loop, and the loop's steps reuse them.
    output, _ = step(inputs[0], tuple(initial_states))
    zeros = tf.zeros_like(output)
    step_inputs = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
    # Every step's output where the layer returns them all, else none: the last is carried.
    written = [tf.TensorArray(output.dtype, size=steps, element_shape=output.shape)] if return_all_outputs else []

    def body(time, previous, states, written):
        output, new_states = step(step_inputs.read(time), states)
        kept = keep[time][:, None]
        output = tf.where(kept, output, zeros if zero_output_for_mask else previous)
        states = [tf.where(kept, new, old) for new, old in zip(tf.nest.flatten(new_states), states)]
        return time + 1, output, states, [outputs.write(time, output) for outputs in written]

    _, last, states, written = tf.while_loop(lambda time, *_: time < stop, body,
                                             (first, zeros, list(initial_states), written), maximum_iterations=steps)
    # steps never written (before the span, and after it) are zeros
    outputs = written[0].stack() if return_all_outputs else None
    return (*_batch_major(last, outputs, steps, stop, zero_output_for_mask=zero_output_for_mask), states)


def _time_major(inputs, mask, go_backwards: bool):
    """Batch-major `inputs` and their `mask` as the loop reads them: time-major, the mask as booleans (`keep`),
    both reversed for `go_backwards`; and the span (first, stop) of steps some row keeps."""
    inputs = tf.transpose(inputs, (1, 0, 2))
    keep = tf.transpose(tf.cast(mask, tf.bool))
    if go_backwards:
        inputs, keep = tf.reverse(inputs, [0]), tf.reverse(keep, [0])
    return inputs, keep, _span(keep)


def _batch_major(last, outputs, steps, stop, *, zero_output_for_mask: bool):
    """(last output, outputs) as Keras' loop returns them, from the loop over the span: its last output and its
    time-major outputs (None where the layer returns only the last). After the span every row is masked: Keras'
    loop repeats the last output there, or writes zeros."""
    if outputs is None:
        last = tf.where(stop < steps, tf.zeros_like(last), last) if zero_output_for_mask else last
        return last, last[:, None]
    if not zero_output_for_mask:
        outputs = tf.where(tf.range(steps)[:, None, None] >= stop, last[None], outputs)
    return outputs[-1], tf.transpose(outputs, (1, 0, 2))


def simple_rnn_loop(projected, recurrent_kernel, state, mask, state_mask, *, go_backwards: bool,
                    zero_output_for_mask: bool, return_sequences: bool):
    """What `keras.src.backend.rnn` returns for a SimpleRNN with a tanh activation whose inputs are already
    projected (`x_t W + b`): (last output, outputs, [state]); outputs batch-major, only the last when
    `return_sequences` is off, as Keras returns them."""
    inputs = tf.transpose(projected, (1, 0, 2))  # time-major: a step reads one slice
    keep = None if mask is None else tf.transpose(tf.cast(mask, tf.bool))[:, :, None]
    if go_backwards:
        inputs = tf.reverse(inputs, [0])
        keep = None if keep is None else tf.reverse(keep, [0])
    kernel = tf.cast(recurrent_kernel, inputs.dtype)
    extras = [t for t in (keep, state_mask) if t is not None]
    states = _recurrence(keep is not None, state_mask is not None)(inputs, kernel, state, *extras)
    outputs = states if keep is None or not zero_output_for_mask else tf.where(keep, states, tf.zeros_like(states))
    last = outputs[-1]
    outputs = tf.transpose(outputs, (1, 0, 2)) if return_sequences else last[:, None]
    return last, outputs, [states[-1]]


def _recurrence(masked: bool, dropout: bool):
    """h_t = where(keep_t, tanh(p_t + (h_(t-1) * state_mask) U), h_(t-1)) for every t, time-major, as a
    function of (p, U, h_0[, keep][, state_mask]) with its gradient written out."""

    @tf.custom_gradient
    def states_of(inputs, kernel, initial, *extras):
        keep = extras[0] if masked else None
        state_mask = extras[-1] if dropout else None

        def step(previous, x):
            p_t, keep_t = x if masked else (x, None)
            carried = previous * state_mask if dropout else previous
            new = tf.tanh(p_t + tf.matmul(carried, kernel))
            return tf.where(keep_t, new, previous) if masked else new

        states = tf.scan(step, (inputs, keep) if masked else inputs, initializer=initial)

        def gradient(upstream):
            previous_states = tf.concat([initial[None], states[:-1]], 0)

            def back(carry, x):
                _, after = carry  # the gradient that h_t passes to h_(t-1) at step t + 1
                h_t, g_t, keep_t = x if masked else (*x, None)
                total = after + g_t
                into_new = (tf.where(keep_t, total, tf.zeros_like(total)) if masked else total) * (1.0 - h_t * h_t)
                before = tf.matmul(into_new, kernel, transpose_b=True)
                if dropout:
                    before = before * state_mask
                if masked:
                    before = before + tf.where(keep_t, tf.zeros_like(total), total)
                return into_new, before

            zero = tf.zeros_like(initial)
            into_new, before = tf.scan(back, (states, upstream, keep) if masked else (states, upstream),
                                       initializer=(zero, zero), reverse=True)
            carried = previous_states * state_mask if dropout else previous_states
            units = kernel.shape[-1]
            kernel_gradient = tf.matmul(tf.reshape(carried, (-1, units)), tf.reshape(into_new, (-1, units)),
                                        transpose_a=True)  # sum over every step in one product
            return (into_new, kernel_gradient, before[0]) + (None,) * len(extras)

        return states, gradient

    return states_of


def written_rnn(cell, inputs, initial_states, mask, *, gru: bool, go_backwards: bool, zero_output_for_mask: bool,
                return_all_outputs: bool):
    """`masked_rnn` for a training step of an LSTM or GRU cell (`gru`; sigmoid gates, tanh activation, Keras'
    implementation 2, so no recurrent dropout; a GRU's reset gate after its product) with the gradient written out:
    (last output, outputs, states); `inputs` batch-major, their dropout applied. The forward loop runs Keras' cell
    arithmetic in its order and keeps every value the backward loop needs (the gates, the states before), so that
    no activation is computed again, and TensorFlow's own gradient, which keeps more stacks, is not made
    (docs/performance.md). Only over the span of steps some row keeps, as `masked_rnn`."""
    inputs, keep, (first, stop) = _time_major(inputs, mask, go_backwards)
    arithmetic = _GRU if gru else _LSTM
    bias = (tf.convert_to_tensor(cell.bias) if cell.use_bias
            else tf.zeros(arithmetic.bias_shape(cell.units), inputs.dtype))
    last, outputs, *states = _written(arithmetic, zero_output_for_mask, return_all_outputs)(
        inputs, tf.convert_to_tensor(cell.kernel), tf.convert_to_tensor(cell.recurrent_kernel), bias, keep, first,
        stop, *initial_states)
    last, outputs = _batch_major(last, outputs if return_all_outputs else None, _steps(inputs), stop,
                                 zero_output_for_mask=zero_output_for_mask)
    return last, outputs, states


class _LSTM:
    """Keras' LSTMCell (implementation 2), operation for operation, and its gradient. States (h, c)."""

    values = 5

    @staticmethod
    def bias_shape(units):
        return (4 * units,)

    @staticmethod
    def step(x, states, kernel, recurrent, bias):
        """(new states, the values the gradient needs)."""
        h, c = states
        z = tf.matmul(x, kernel)
        z = tf.add(z, tf.matmul(h, recurrent))
        z = tf.add(z, bias)
        z0, z1, z2, z3 = tf.split(z, 4, axis=1)
        i, f, g, o = tf.sigmoid(z0), tf.sigmoid(z1), tf.tanh(z2), tf.sigmoid(z3)
        new_c = f * c + i * g
        tanh_c = tf.tanh(new_c)
        return (o * tanh_c, new_c), (i, f, g, o, tanh_c)

    @staticmethod
    def back(d_states, values, before):
        """(gradient of x W, of h U, of the states before other than through h U) from the new states' gradient."""
        dh, dc = d_states
        i, f, g, o, tanh_c = values
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        dz = tf.concat([dc * g * i * (1 - i), dc * before[1] * f * (1 - f), dc * i * (1 - g * g),
                        dh * tanh_c * o * (1 - o)], 1)
        return dz, dz, (None, dc * f)

    @staticmethod
    def bias_gradient(d_x, d_h):
        return tf.reduce_sum(d_x, 0)


class _GRU:
    """Keras' GRUCell (implementation 2, reset gate after the product: its default), operation for operation, and
    its gradient. The bias is (input bias, recurrent bias). State h."""

    values = 4

    @staticmethod
    def bias_shape(units):
        return (2, 3 * units)

    @staticmethod
    def step(x, states, kernel, recurrent, bias):
        (h,) = states
        x_z, x_r, x_h = tf.split(tf.add(tf.matmul(x, kernel), bias[0]), 3, axis=1)
        r_z, r_r, r_h = tf.split(tf.add(tf.matmul(h, recurrent), bias[1]), 3, axis=1)
        z = tf.sigmoid(x_z + r_z)
        r = tf.sigmoid(x_r + r_r)
        hh = tf.tanh(x_h + r * r_h)
        return (z * h + (1 - z) * hh,), (z, r, hh, r_h)

    @staticmethod
    def back(d_states, values, before):
        (dh,) = d_states
        z, r, hh, r_h = values
        d_hh = dh * (1 - z) * (1 - hh * hh)
        d_z = dh * (before[0] - hh) * z * (1 - z)
        d_r = d_hh * r_h * r * (1 - r)
        return tf.concat([d_z, d_r, d_hh], 1), tf.concat([d_z, d_r, d_hh * r], 1), (dh * z,)

    @staticmethod
    def bias_gradient(d_x, d_h):
        return tf.stack([tf.reduce_sum(d_x, 0), tf.reduce_sum(d_h, 0)])


def _written(arithmetic, zero_output_for_mask: bool, return_all_outputs: bool):
    """A cell's masked recurrence over the span [first, stop) of time-major inputs, as a function of (x, W, U, b,
    keep, first, stop, *initial states) returning (last output, outputs or an empty tensor, *states) with its
    gradient; the first state is the output."""

    @tf.custom_gradient
    def recurrence(inputs, kernel, recurrent, bias, keep, first, stop, *initial):
        steps = _steps(inputs)
        xs = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
        zeros = tf.zeros_like(initial[0])
        # the cell's values at each step, then the states before it
        kept = [tf.TensorArray(inputs.dtype, size=steps, element_shape=zeros.shape)
                for _ in range(arithmetic.values + len(initial))]
        written = [tf.TensorArray(inputs.dtype, size=steps, element_shape=zeros.shape)] if return_all_outputs else []

        def body(t, output, states, kept, written):
            new_states, values = arithmetic.step(xs.read(t), states, kernel, recurrent, bias)
            row = keep[t][:, None]
            output = tf.where(row, new_states[0], zeros if zero_output_for_mask else output)
            return (t + 1, output, [tf.where(row, new, old) for new, old in zip(new_states, states)],
                    [stack.write(t, value) for stack, value in zip(kept, (*values, *states))],
                    [outputs.write(t, output) for outputs in written])

        _, last, states, kept, written = tf.while_loop(lambda t, *_: t < stop, body,
                                                       (first, zeros, list(initial), kept, written),
                                                       maximum_iterations=steps)
        outputs = written[0].stack() if return_all_outputs else tf.zeros((0,), inputs.dtype)

        def gradient(d_last, d_outputs, *d_states):
            d_last, *d_states = (zeros if d is None else d for d in (d_last, *d_states))
            upstream = (tf.TensorArray(inputs.dtype, size=steps).unstack(d_outputs)
                        if return_all_outputs and d_outputs is not None else None)

            def back(t, d_output, d_states, d_kernel, d_recurrent, d_bias, d_inputs):
                t = t - 1
                row = keep[t][:, None]
                if upstream is not None:
                    d_output = d_output + upstream.read(t)
                values = [stack.read(t) for stack in kept]
                before = values[arithmetic.values:]
                # a masked row's step left its states as they were: their gradient passes it by
                d_new = [tf.where(row, d_output + d_states[0], zeros)] + [tf.where(row, d, zeros) for d in d_states[1:]]
                d_x, d_h, direct = arithmetic.back(d_new, values[:arithmetic.values], before)
                through_h = tf.matmul(d_h, recurrent, transpose_b=True)
                direct = (through_h if direct[0] is None else through_h + direct[0], *direct[1:])
                d_before = [piece + tf.where(row, zeros, d) for piece, d in zip(direct, d_states)]
                return (t, zeros if zero_output_for_mask else tf.where(row, zeros, d_output), d_before,
                        d_kernel + tf.matmul(xs.read(t), d_x, transpose_a=True),
                        d_recurrent + tf.matmul(before[0], d_h, transpose_a=True),
                        d_bias + arithmetic.bias_gradient(d_x, d_h),
                        d_inputs.write(t, tf.matmul(d_x, kernel, transpose_b=True)))

            start = (stop, d_last, list(d_states), tf.zeros_like(kernel), tf.zeros_like(recurrent),
                     tf.zeros_like(bias), tf.TensorArray(inputs.dtype, size=steps, element_shape=inputs.shape[1:]))
            _, _, d_states, d_kernel, d_recurrent, d_bias, d_inputs = tf.while_loop(
                lambda t, *_: t > first, back, start, maximum_iterations=steps)
            return (d_inputs.stack(), d_kernel, d_recurrent, d_bias, None, None, None, *d_states)

        return (last, outputs, *states), gradient

    return recurrence
