"""A trained model's probabilities for encoded reviews, and its test metrics: what `rnn train`'s
final evaluation, `rnn eval` and `rnn predict` share."""

from __future__ import annotations

import numpy as np

from rnn_cli.batches import Batches
from rnn_cli.config import DataConfig
from rnn_cli.corpus import Reviews
from rnn_cli.metrics import score
from rnn_cli.model import class_count, masks_padding

INFERENCE_BATCH_SIZE = 256  # rnn eval and predict: no gradients, larger batches are cheaper


def evaluate_model(model, reviews: Reviews, data: DataConfig, batch_size: int | None = None,
                   callbacks=(), classes: tuple[str, ...] | None = None) -> dict:
    """Predict every review, batched as the model was trained, and score: `classification_metrics`
    for two classes, `multiclass_metrics` for more (`classes`: their names).

    `batch_size` (default: the inference batch size) and `callbacks` as in `predict_probabilities`.
    """
    probabilities = predict_probabilities(model, reviews, data, batch_size or INFERENCE_BATCH_SIZE, callbacks)
    return score(reviews.labels, probabilities, classes or tuple(map(str, range(class_count(model)))))


def predict_probabilities(model, reviews: Reviews, data: DataConfig,
                          batch_size: int = INFERENCE_BATCH_SIZE, callbacks=()) -> np.ndarray:
    """The model's probability of "positive" for every review, in the reviews' order, or for N classes
    an (n, N) array of each class' probability (`callbacks`: Keras callbacks for `model.predict`).

    On TensorFlow without XLA, whatever the model was compiled with: compiling the forward pass for
    each bucket shape costs `rnn eval` more time than it saves on a few large batches, and after an
    XLA training it raised the peak memory more than it saved in time (see `rnn_cli.training.finish`).
    On JAX, whose uncompiled steps run op by op, the model's own setting stays (docs/performance.md).
    The model's own setting is put back after.
    """
    import keras

    batches = Batches(reviews, batch_size, data, masked=masks_padding(model), bucketed=data.bucketing)
    order = np.concatenate(batches.indices())
    count = class_count(model)
    probabilities = np.empty((len(reviews), count) if count > 2 else len(reviews), dtype=np.float32)
    # Keras keeps the first predict function it builds, whatever jit_compile says later: build anew.
    own = model.jit_compile
    model.jit_compile, model.predict_function = own and keras.backend.backend() == "jax", None
    try:
        out = model.predict(batches.dataset(), verbose=0, callbacks=list(callbacks))
        probabilities[order] = out if count > 2 else out.reshape(-1)
    finally:
        model.jit_compile, model.predict_function = own, None
    return probabilities


def predict_few(model, reviews: Reviews, data: DataConfig, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
    """`predict_probabilities` for a few reviews at a time, called again and again (rnn predict,
    rnn serve): batch by batch through the model's own predict step, which TensorFlow traces once
    per batch shape and keeps, instead of a fresh pipeline and predict function per call, which cost
    more than the model itself (docs/performance.md#rnn-serve). Turns the model's XLA setting off for
    good: inference does not use it."""
    if model.jit_compile:
        model.jit_compile, model.predict_function = False, None
    batches = Batches(reviews, batch_size, data, masked=masks_padding(model), bucketed=data.bucketing)
    indices = batches.indices()
    out = np.concatenate([model.predict_on_batch(batches.batch(index)[0]) for index in indices])
    probabilities = np.empty_like(out)
    probabilities[np.concatenate(indices)] = out
    return probabilities if class_count(model) > 2 else probabilities.reshape(-1)
