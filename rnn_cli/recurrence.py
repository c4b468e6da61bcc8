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
