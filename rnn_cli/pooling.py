"""model.pooling: how the last recurrent layer's outputs become the one vector the head reads.

`last` is the book's: the final state, no layer of its own. The others pool the outputs of every
time step the review has, and padding never enters: a max over the steps read, a mean over them,
both side by side (`max_mean`, twice the width), or `attention`, a softmax-weighted sum whose
weights come from one learned vector (score_t = q . h_t; q starts at zero, so training starts from
the mean). The steps read are the non-zero token ids, whatever the padding side or masking, so the
layer takes the tokens beside the outputs. A review with no token pools to zeros.
"""

from __future__ import annotations

import keras
from keras import ops

POOLINGS = ("last", "max", "mean", "max_mean", "attention")
FAR_BELOW = -1e9  # stands for padding in a max or a softmax: far below any output or score


@keras.saving.register_keras_serializable(package="rnn_cli")
class Pooling(keras.layers.Layer):
    """[(batch, time, units) outputs, (batch, time) token ids] -> (batch, units), or 2 * units for max_mean."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLINGS[1:]:
            raise ValueError(f"pooling {mode!r}: one of {', '.join(POOLINGS[1:])}")
        self.mode = mode

    def build(self, input_shape):
        if self.mode == "attention":
            self.query = self.add_weight(shape=(input_shape[0][-1],), initializer="zeros", name="query")

    def call(self, inputs, mask=None):  # noqa: ARG002 - the tokens say what is read, with or without a mask
        outputs, tokens = inputs
        read = ops.expand_dims(ops.not_equal(tokens, 0), -1)  # (batch, time, 1)
        count = ops.sum(ops.cast(read, outputs.dtype), axis=1)  # (batch, 1)
        if self.mode == "attention":
            scores = ops.where(read, ops.matmul(outputs, ops.expand_dims(self.query, -1)), FAR_BELOW)
            weights = ops.softmax(scores, axis=1) * ops.cast(read, outputs.dtype)
            return ops.sum(outputs * weights, axis=1)
        mean = ops.sum(ops.where(read, outputs, 0.0), axis=1) / ops.maximum(count, 1.0)
        if self.mode == "mean":
            return mean
        largest = ops.where(count > 0, ops.max(ops.where(read, outputs, FAR_BELOW), axis=1), 0.0)
        return largest if self.mode == "max" else ops.concatenate([largest, mean], axis=-1)

    def compute_mask(self, inputs, previous_mask=None):
        return None  # one vector per review: no time axis left to mask

    def compute_output_shape(self, input_shape):
        batch, _, units = input_shape[0]
        return (batch, 2 * units if self.mode == "max_mean" else units)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}

