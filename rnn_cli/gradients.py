"""An embedding's gradient summed per row before the optimizer sees it, on TensorFlow.

On TensorFlow the gradient of a lookup is a `tf.IndexedSlices`: one row per token of the batch, so a word
seen three times has three rows. Keras 3's optimizers square those rows one by one: RMSprop's and Adam's
average of squared gradients gets g1^2 + g2^2 + g3^2 where the word's gradient is g1 + g2 + g3 and its
square (g1 + g2 + g3)^2. A word's step then depends on how often it occurs in the batch, and TensorFlow
trains another optimizer than JAX and PyTorch, whose gradients arrive summed per row, as they did in
Keras 2. Summed first (`tf.convert_to_tensor`, a dense 10,000 x 32 gradient), every backend computes the
optimizer's own formula, at the same speed within the noise (docs/performance.md).
"""

from __future__ import annotations

import keras


def summed_rows(model: keras.Model) -> keras.Model:
    """`model` with its optimizer given each gradient summed per row (TensorFlow); returns the model."""
    optimizer = getattr(model, "optimizer", None)
    if keras.backend.backend() != "tensorflow" or optimizer is None or "apply" in vars(optimizer):
        return model
    import tensorflow as tf

    apply = optimizer.apply

    def apply_summed(grads, trainable_variables=None):
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        return apply(grads, trainable_variables)

    optimizer.apply = apply_summed  # on the instance: the saved model keeps Keras' own optimizer
    return model
