"""rnn_cli/projected.py: SimpleRNN's input projection out of its loop, and every masked loop run over the span of
steps some row keeps (rnn_cli/recurrence.py), compute what Keras' own loop does: the same outputs, the same
dropout masks, the same training steps, to float32 rounding."""

import keras
import numpy as np
import pytest

from rnn_cli.config import LayerConfig, ModelConfig, TrainConfig
from rnn_cli.model import build_model, compile_model, reseed_dropout
from rnn_cli.projected import faster_loops, skips_padding

TOLERANCE = 1e-5


def pair(layers, masked=True, dropout=0.0, kind="simple_rnn", recurrent_dropout=None, use_bias=True):
    """The same model twice, from the same weights: rnn-cli's (its faster loops) and Keras' own loop; recurrent
    dropout as `dropout` unless given; recurrent layers without a bias for `use_bias=False` (no config key sets it:
    a hand-built model's)."""
    recurrent_dropout = dropout if recurrent_dropout is None else recurrent_dropout
    config = ModelConfig(embedding_dim=6, layers=tuple(LayerConfig(type=kind, units=5, bidirectional=b,
                                                                   dropout=dropout, recurrent_dropout=recurrent_dropout)
                                                       for b in layers))
    projected = build_model(config, 50, mask_zero=masked)
    if not use_bias:
        projected = faster_loops(keras.Model.from_config(without_bias(projected.get_config())))
    own = keras.Model.from_config(projected.get_config())  # Keras' layers, its own loop
    rng = np.random.default_rng(0)
    weights = [rng.normal(0.0, 0.6, w.shape) for w in projected.get_weights()]
    projected.set_weights(weights)
    own.set_weights(weights)
    return projected, own


def without_bias(config):
    """A model's config with every recurrent layer's `use_bias` off, inside Bidirectional wrappers too."""
    if isinstance(config, dict):
        if config.get("class_name") in ("SimpleRNN", "LSTM", "GRU"):
            config["config"]["use_bias"] = False
        for value in config.values():
            without_bias(value)
    elif isinstance(config, list):
        for value in config:
            without_bias(value)
    return config


def tokens(padding: str, width: int = 16) -> np.ndarray:
    """Reviews of 2 to 12 words padded to `width`: the last steps (the first, backwards) are padding in every row,
    as in a bucket whose longest review is shorter than its length."""
    rng = np.random.default_rng(1)
    batch = np.zeros((8, width), dtype=np.int32)
    for row, length in enumerate(rng.integers(2, 13, size=8)):
        words = rng.integers(1, 50, size=length)
        if padding == "pre":
            batch[row, width - length:] = words
        else:
            batch[row, :length] = words
    return batch


def recurrent(model):
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))]


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("masked, padding", [(True, "post"), (False, "pre"), (False, "post")])
def test_the_faster_loops_give_keras_outputs(masked, padding, kind, monkeypatch):
    """Each layer of a stack gives Keras' outputs: one returning its sequence, then a bidirectional one returning
    its last output (its backward copy loops backwards)."""
    from rnn_cli import recurrence

    spans = []
    monkeypatch.setattr(recurrence, "masked_rnn", lambda *a, _loop=recurrence.masked_rnn, **k:
                        spans.append(1) or _loop(*a, **k))
    projected, own = pair([False, True], masked, kind=kind)
    assert all("inner_loop" in vars(layer) or "inner_loop" in vars(layer.forward_layer)
               for layer in recurrent(projected))  # the faster loop is the one that runs
    assert not any("inner_loop" in vars(layer) for layer in recurrent(own))
    x = tokens(padding)
    for a, b in zip(recurrent(projected), recurrent(own)):
        got = keras.Model(projected.inputs[0], a.output)(x, training=False)
        want = keras.Model(own.inputs[0], b.output)(x, training=False)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=TOLERANCE)
        assert np.ptp(np.asarray(want)) > 0.2  # outputs that differ by row and unit
    np.testing.assert_allclose(projected.predict(x, verbose=0), own.predict(x, verbose=0), atol=TOLERANCE)
    assert bool(spans) == masked  # under a mask every kind's forward pass runs over the span alone


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("masked, dropout, jit", [(True, 0.3, True), (False, 0.3, False), (True, 0.0, False)])
def test_training_steps_match_keras_loop(masked, dropout, jit, kind, monkeypatch):
    """Training runs SimpleRNN's loop with its gradient written out, and every masked loop over the span of steps
    some row keeps (rnn_cli/recurrence.py), whose steps move the weights as Keras' loop does; input and recurrent
    dropout drawn as Keras' cell draws them: the same seed, the same masks, so the same weights after a few steps
    (a mask drawn otherwise moves them apart at once)."""
    from rnn_cli import recurrence

    calls = []
    for name in ("simple_rnn_loop", "masked_rnn", "written_rnn"):
        monkeypatch.setattr(recurrence, name, lambda *a, _loop=getattr(recurrence, name), _name=name, **k:
                            calls.append(_name) or _loop(*a, **k))
    layers = [False, True]  # a layer returning its sequence, then a bidirectional one (a loop backwards)
    projected, own = pair(layers, masked=masked, dropout=dropout, kind=kind)
    x, y = tokens("post" if masked else "pre"), np.arange(8) % 2
    start = projected.get_weights()
    for model in (projected, own):
        compile_model(model, TrainConfig(learning_rate=0.01, jit_compile=jit))
        reseed_dropout(model, seed=7, epoch=1)  # the two models' mask generators in the same state
        for _ in range(3):
            model.train_on_batch(x, y)
    # An LSTM or GRU without recurrent dropout trains on its loop with the gradient written out (the next test).
    loop = ("simple_rnn_loop" if kind == "simple_rnn" else None if not masked else
            "written_rnn" if not dropout else "masked_rnn")
    if loop:  # every loop of the model (traced more than once)
        assert calls.count(loop) >= len(layers) + sum(layers)
    else:  # nothing to span: Keras' own loop
        assert not calls
    if kind == "simple_rnn":  # its inference never takes the written gradient's loop: a saved model has plain ops
        traced = calls.count(loop)
        projected.predict(x, verbose=0)
        assert calls.count(loop) == traced and ("masked_rnn" in calls) == masked
    moved = 0.0
    for a, b, before in zip(projected.get_weights(), own.get_weights(), start):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)
        moved = max(moved, np.abs(b - before).max())
    assert moved > 0.01  # the steps did move the weights


@pytest.mark.parametrize("kind, dropout, jit, use_bias", [("lstm", 0.3, True, True), ("lstm", 0.0, False, False),
                                                         ("gru", 0.3, False, True), ("gru", 0.0, True, False)])
def test_an_lstm_or_gru_trains_with_its_gradient_written_out_as_keras_loop_does(dropout, jit, kind, use_bias,
                                                                                 monkeypatch):
    """An LSTM or GRU without recurrent dropout (Keras' fused gates) trains on rnn_cli/recurrence.py's `written_rnn`:
    every layer of a stack (one returning its sequence, then a bidirectional one), a row of padding alone among them,
    input dropout drawn as Keras' cell draws it, with a bias and without (each kind with XLA and without, dropout
    and none); the weights after a few steps are Keras' loop's (they are not with a factor of the gradient left
    out: tried)."""
    from rnn_cli import recurrence

    calls = []
    monkeypatch.setattr(recurrence, "written_rnn", lambda *a, _loop=recurrence.written_rnn, **k:
                        calls.append(1) or _loop(*a, **k))
    projected, own = pair([False, True], dropout=dropout, kind=kind, recurrent_dropout=0.0, use_bias=use_bias)
    assert len(projected.get_weights()) == (12 if use_bias else 9)  # embedding, 3 loops' kernels (and biases), head's 2
    x, y = tokens("post"), np.arange(8) % 2
    x[3] = 0
    start = projected.get_weights()
    for model in (projected, own):
        compile_model(model, TrainConfig(learning_rate=0.01, jit_compile=jit))
        reseed_dropout(model, seed=7, epoch=1)
        for _ in range(3):
            model.train_on_batch(x, y)
    assert len(calls) >= 3  # each layer's loop, the bidirectional one's two directions
    moved = 0.0
    for a, b, before in zip(projected.get_weights(), own.get_weights(), start):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)
        moved = max(moved, np.abs(b - before).max())
    assert moved > 0.01
    calls.clear()
    projected.predict(x, verbose=0)  # inference keeps Keras' cell in the span loop: a saved model has plain ops
    assert not calls


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_a_batch_of_padding_alone_gives_keras_outputs(kind):
    """A batch with no step to span (every row empty) gives Keras' outputs."""
    projected, own = pair([False, True], kind=kind)
    x = np.zeros((3, 8), dtype=np.int32)
    np.testing.assert_allclose(projected.predict(x, verbose=0), own.predict(x, verbose=0), atol=TOLERANCE)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
def test_a_saved_model_keeps_keras_own_layer(tmp_path, kind):
    """model.keras loads with Keras alone (no rnn-cli class in it); rnn-cli's loader gives it the loop again."""
    from rnn_cli.loading import load_keras

    projected, _ = pair([False], kind=kind)
    projected.save(tmp_path / "model.keras")
    plain = keras.saving.load_model(tmp_path / "model.keras")
    name = f"{kind}_0"
    assert type(plain.get_layer(name)) is type(projected.get_layer(name))
    assert "inner_loop" not in vars(plain.get_layer(name))
    assert "inner_loop" in vars(load_keras(tmp_path / "model.keras").get_layer(name))
    assert faster_loops(plain) is plain


def test_padding_is_skipped_where_every_loop_spans_it():
    """Validation pads every batch to one length where every recurrent layer skips the padding (rnn_cli/training.py):
    on TensorFlow, for each kind, not where a loop is unrolled, Keras' own, or cuDNN's (use_cudnn=True: a GPU's)."""
    for kind in ("simple_rnn", "lstm", "gru"):
        projected, own = pair([False, True], kind=kind)
        assert skips_padding(projected) and not skips_padding(own)
    lstm, _ = pair([False, True], kind="lstm")
    lstm.get_layer("lstm_0").use_cudnn = True
    assert not skips_padding(lstm)
    simple, _ = pair([False], kind="simple_rnn")
    simple.get_layer("simple_rnn_0").unroll = True
    assert not skips_padding(simple)
    # In training SimpleRNN's loop runs every step (its written gradient): training's buckets stay narrow for it.
    for kind in ("lstm", "gru"):
        assert skips_padding(pair([False, True], kind=kind)[0], training=True)
    assert not skips_padding(pair([False], kind="simple_rnn")[0], training=True)
