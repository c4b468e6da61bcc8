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

An LSTM's training step (Keras' fused gates, no recurrent dropout: the shipped LSTM) runs `lstm_rnn`: its loop over
the span with the gradient written out, the forward loop keeping every value the backward loop needs, so that
TensorFlow's own stacks (more of them) are not made: 12-16% less time per step of the loop, the same weights to
float32 rounding (tests/test_projected.py).

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
    inputs = tf.transpose(inputs, (1, 0, 2))
    keep = tf.transpose(tf.cast(mask, tf.bool))
    if go_backwards:
        inputs, keep = tf.reverse(inputs, [0]), tf.reverse(keep, [0])
    steps = _steps(inputs)
    first, stop = _span(keep)
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
    # After the span every row is masked: Keras' loop repeats the last output there, or writes zeros.
    if return_all_outputs:
        outputs = written[0].stack()  # steps never written (before the span, and after it) are zeros
        if not zero_output_for_mask:
            outputs = tf.where(tf.range(steps)[:, None, None] >= stop, last[None], outputs)
        last = outputs[-1]
        outputs = tf.transpose(outputs, (1, 0, 2))
    else:
        last = tf.where(stop < steps, zeros, last) if zero_output_for_mask else last
        outputs = last[:, None]
    return last, outputs, states


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


def lstm_rnn(cell, inputs, initial_states, mask, *, go_backwards: bool, zero_output_for_mask: bool,
             return_all_outputs: bool):
    """`masked_rnn` for a training step of an LSTM (sigmoid gates, tanh activation, Keras' implementation 2, so no
    recurrent dropout) with its gradient written out: (last output, outputs, [h, c]); `inputs` batch-major, their
    dropout applied. The forward loop runs Keras' cell arithmetic in its order and keeps every value the backward
    loop needs (the gates, the state before, tanh of the new state, h before), so that no activation is computed
    again: 12-16% less time per step of the shipped LSTM's loop than TensorFlow's own gradient, which keeps more
    stacks (docs/performance.md). Only over the span of steps some row keeps, as `masked_rnn`."""
    inputs = tf.transpose(inputs, (1, 0, 2))
    keep = tf.transpose(tf.cast(mask, tf.bool))
    if go_backwards:
        inputs, keep = tf.reverse(inputs, [0]), tf.reverse(keep, [0])
    first, stop = _span(keep)
    bias = cell.bias if cell.use_bias else tf.zeros((4 * cell.units,), inputs.dtype)
    last, outputs, h, c = _lstm(zero_output_for_mask, return_all_outputs)(
        inputs, tf.convert_to_tensor(cell.kernel), tf.convert_to_tensor(cell.recurrent_kernel),
        tf.convert_to_tensor(bias), *initial_states, keep, first, stop)
    if return_all_outputs:
        if not zero_output_for_mask:  # after the span Keras' loop repeats the last output
            outputs = tf.where(tf.range(_steps(inputs))[:, None, None] >= stop, last[None], outputs)
        last = outputs[-1]
        outputs = tf.transpose(outputs, (1, 0, 2))
    else:
        last = tf.where(stop < _steps(inputs), tf.zeros_like(last), last) if zero_output_for_mask else last
        outputs = last[:, None]
    return last, outputs, [h, c]


def _lstm(zero_output_for_mask: bool, return_all_outputs: bool):
    """The LSTM's masked recurrence over the span [first, stop) of time-major inputs, as a function of (x, W, U, b,
    h_0, c_0, keep, first, stop) returning (last output, outputs or an empty tensor, h, c) with its gradient."""

    @tf.custom_gradient
    def recurrence(inputs, kernel, recurrent, bias, h0, c0, keep, first, stop):
        steps = _steps(inputs)
        xs = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
        zeros = tf.zeros_like(h0)
        kept = [tf.TensorArray(inputs.dtype, size=steps, element_shape=h0.shape) for _ in range(7)]
        written = [tf.TensorArray(inputs.dtype, size=steps, element_shape=h0.shape)] if return_all_outputs else []

        def body(t, output, h, c, kept, written):
            z = tf.matmul(xs.read(t), kernel)  # Keras' LSTMCell (implementation 2), operation for operation
            z = tf.add(z, tf.matmul(h, recurrent))
            z = tf.add(z, bias)
            z0, z1, z2, z3 = tf.split(z, 4, axis=1)
            i, f, g, o = tf.sigmoid(z0), tf.sigmoid(z1), tf.tanh(z2), tf.sigmoid(z3)
            new_c = f * c + i * g
            tanh_c = tf.tanh(new_c)
            new_h = o * tanh_c
            row = keep[t][:, None]
            output = tf.where(row, new_h, zeros if zero_output_for_mask else output)
            values = (i, f, g, o, c, tanh_c, h)
            return (t + 1, output, tf.where(row, new_h, h), tf.where(row, new_c, c),
                    [stack.write(t, value) for stack, value in zip(kept, values)],
                    [outputs.write(t, output) for outputs in written])

        _, last, h, c, kept, written = tf.while_loop(lambda t, *_: t < stop, body,
                                                     (first, zeros, h0, c0, kept, written), maximum_iterations=steps)
        outputs = written[0].stack() if return_all_outputs else tf.zeros((0,), inputs.dtype)

        def gradient(d_last, d_outputs, d_h, d_c):
            d_last, d_h, d_c = (zeros if d is None else d for d in (d_last, d_h, d_c))
            upstream = (tf.TensorArray(inputs.dtype, size=steps).unstack(d_outputs)
                        if return_all_outputs and d_outputs is not None else None)

            def back(t, d_output, dh, dc, d_kernel, d_recurrent, d_bias, d_inputs):
                t = t - 1
                row = keep[t][:, None]
                if upstream is not None:
                    d_output = d_output + upstream.read(t)
                i, f, g, o, c_before, tanh_c, h_before = (stack.read(t) for stack in kept)
                dh_new = tf.where(row, d_output + dh, zeros)
                dc_new = tf.where(row, dc, zeros) + dh_new * o * (1 - tanh_c * tanh_c)
                dz = tf.concat([dc_new * g * i * (1 - i), dc_new * c_before * f * (1 - f), dc_new * i * (1 - g * g),
                                dh_new * tanh_c * o * (1 - o)], 1)
                return (t, zeros if zero_output_for_mask else tf.where(row, zeros, d_output),
                        tf.matmul(dz, recurrent, transpose_b=True) + tf.where(row, zeros, dh),
                        dc_new * f + tf.where(row, zeros, dc),
                        d_kernel + tf.matmul(xs.read(t), dz, transpose_a=True),
                        d_recurrent + tf.matmul(h_before, dz, transpose_a=True), d_bias + tf.reduce_sum(dz, 0),
                        d_inputs.write(t, tf.matmul(dz, kernel, transpose_b=True)))

            start = (stop, d_last, d_h, d_c, tf.zeros_like(kernel), tf.zeros_like(recurrent), tf.zeros_like(bias),
                     tf.TensorArray(inputs.dtype, size=steps, element_shape=inputs.shape[1:]))
            _, _, dh, dc, d_kernel, d_recurrent, d_bias, d_inputs = tf.while_loop(
                lambda t, *_: t > first, back, start, maximum_iterations=steps)
            return d_inputs.stack(), d_kernel, d_recurrent, d_bias, dh, dc, None, None, None

        return (last, outputs, h, c), gradient

    return recurrence
