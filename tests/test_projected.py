"""rnn_cli/projected.py: SimpleRNN's input projection out of its loop computes what Keras' own loop does:
the same outputs, the same dropout masks, the same training steps, to float32 rounding."""

import keras
import numpy as np
import pytest

from rnn_cli.config import LayerConfig, ModelConfig, TrainConfig
from rnn_cli.model import build_model, compile_model, reseed_dropout
from rnn_cli.projected import project_inputs

TOLERANCE = 1e-5


def pair(layers, masked=True, dropout=0.0):
    """The same model twice, from the same weights: rnn-cli's (projected) and Keras' own loop."""
    config = ModelConfig(embedding_dim=6, layers=tuple(LayerConfig(type="simple_rnn", units=5, bidirectional=b,
                                                                   dropout=dropout, recurrent_dropout=dropout)
                                                       for b in layers))
    projected = build_model(config, 50, mask_zero=masked)
    own = keras.Model.from_config(projected.get_config())  # Keras' layers, its own loop
    rng = np.random.default_rng(0)
    weights = [rng.normal(0.0, 0.6, w.shape) for w in projected.get_weights()]
    projected.set_weights(weights)
    own.set_weights(weights)
    return projected, own


def tokens(padding: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    batch = np.zeros((8, 12), dtype=np.int32)
    for row, length in enumerate(rng.integers(2, 13, size=8)):
        words = rng.integers(1, 50, size=length)
        if padding == "pre":
            batch[row, 12 - length:] = words
        else:
            batch[row, :length] = words
    return batch


def simple_rnns(model):
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.SimpleRNN, keras.layers.Bidirectional))]


@pytest.mark.parametrize("layers", [[False], [True], [False, True]], ids=["one", "bidirectional", "stacked"])
@pytest.mark.parametrize("masked, padding", [(True, "post"), (False, "pre"), (False, "post")])
def test_the_projected_loop_gives_keras_outputs(layers, masked, padding):
    projected, own = pair(layers, masked)
    assert all("inner_loop" in vars(layer) or "inner_loop" in vars(layer.forward_layer)
               for layer in simple_rnns(projected))  # the faster loop is the one that runs
    assert not any("inner_loop" in vars(layer) for layer in simple_rnns(own))
    x = tokens(padding)
    for a, b in zip(simple_rnns(projected), simple_rnns(own)):
        got = keras.Model(projected.inputs[0], a.output)(x, training=False)
        want = keras.Model(own.inputs[0], b.output)(x, training=False)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=TOLERANCE)
        assert np.ptp(np.asarray(want)) > 0.5
    np.testing.assert_allclose(projected.predict(x, verbose=0), own.predict(x, verbose=0), atol=TOLERANCE)


@pytest.mark.parametrize("masked, dropout, jit", [(True, 0.3, True), (False, 0.3, False), (True, 0.0, False)])
def test_training_steps_match_keras_loop(masked, dropout, jit, monkeypatch):
    """Training runs the loop with its gradient written out (rnn_cli/recurrence.py), whose steps move the
    weights as Keras' loop does; input and recurrent dropout drawn as Keras' cell draws them: the same seed,
    the same masks, so the same weights after a few steps (a mask drawn otherwise moves them apart at once)."""
    from rnn_cli import recurrence

    calls = []
    monkeypatch.setattr(recurrence, "simple_rnn_loop", lambda *a, _loop=recurrence.simple_rnn_loop, **k:
                        calls.append(k) or _loop(*a, **k))
    layers = [False, True]  # a layer returning its sequence, then a bidirectional one (a loop backwards)
    projected, own = pair(layers, masked=masked, dropout=dropout)
    x, y = tokens("post" if masked else "pre"), np.arange(8) % 2
    start = projected.get_weights()
    for model in (projected, own):
        compile_model(model, TrainConfig(learning_rate=0.01, jit_compile=jit))
        reseed_dropout(model, seed=7, epoch=1)  # the two models' mask generators in the same state
        for _ in range(3):
            model.train_on_batch(x, y)
    assert len(calls) >= len(layers) + sum(layers)  # every loop of the model (traced more than once)
    traced = len(calls)
    projected.predict(x, verbose=0)  # inference keeps Keras' loop: a saved or exported model has no rnn-cli op
    assert len(calls) == traced
    moved = 0.0
    for a, b, before in zip(projected.get_weights(), own.get_weights(), start):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)
        moved = max(moved, np.abs(b - before).max())
    assert moved > 0.01  # the steps did move the weights


def test_a_saved_model_keeps_keras_own_layer(tmp_path):
    """model.keras loads with Keras alone (no rnn-cli class in it); rnn-cli's loader gives it the loop again."""
    from rnn_cli.loading import load_keras

    projected, _ = pair([False])
    projected.save(tmp_path / "model.keras")
    plain = keras.saving.load_model(tmp_path / "model.keras")
    assert type(plain.get_layer("simple_rnn_0")) is keras.layers.SimpleRNN
    assert "inner_loop" not in vars(plain.get_layer("simple_rnn_0"))
    assert "inner_loop" in vars(load_keras(tmp_path / "model.keras").get_layer("simple_rnn_0"))
    assert project_inputs(plain) is plain
