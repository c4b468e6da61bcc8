"""A seed group as one model: every seed's model reads the same token ids, and the ensemble's output is
the mean of their probabilities (the sigmoid's, or each class's softmax column), inside one Keras model,
so that eval, predict, serve and a SavedModel export use it as they use a single run's."""

from __future__ import annotations

import keras

from rnn_cli.errors import UserError

AVERAGE = "mean_of_seeds"


def average(models: list[keras.Model], names: list[str]) -> keras.Model:
    """One model whose output is the mean of `models`' outputs; `names` name the members (seed_42, ...).

    The members must read their input alike: all masked (right-padded buckets) or none.
    """
    masked = {bool(model.get_layer("embedding").mask_zero) for model in models}
    if len(masked) > 1:
        raise UserError("the group's runs were trained on differently padded batches (some masked, some "
                        "left-padded for a GPU), so no one batch suits them all; use its runs one by one")
    for model, name in zip(models, names):
        model.name = name  # the ensemble's layer names must differ; each member keeps its own inside
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    outputs = [model(tokens) for model in models]
    mean = keras.layers.Average(name=AVERAGE, dtype="float32")(outputs) if len(models) > 1 else outputs[0]
    return keras.Model(tokens, mean, name=f"ensemble_of_{len(models)}")


def members(model: keras.Model) -> list[keras.Model]:
    """An ensemble's member models, or [model] for one run's."""
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner or [model]
