"""SimpleRNN's training loop on TensorFlow with its gradient written out.

TensorFlow differentiates Keras' loop step by step: each backward step multiplies by the recurrent kernel
and adds `h_(t-1)^T dh_t` into its gradient, two small products per time step. Written out, the backward
loop keeps one product, and the kernel's gradient is one product over all the steps after the loop (as
rnn_cli/projected.py does for the input kernel forwards): 12-23% less time per training step of the
shipped SimpleRNN on this CPU (docs/performance.md). The forward loop computes what Keras' does, operation for
operation; the gradients agree to float32 rounding (tests/test_projected.py).

Only the training step takes this path: inference, validation and export run Keras' own loop, whose
outputs are the same, so a saved or exported model carries no operation of rnn-cli's.
"""

from __future__ import annotations

import tensorflow as tf


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
