import keras
import numpy as np
import pytest

from rnn_cli import reference, runs
from rnn_cli.config import LayerConfig, ModelConfig
from rnn_cli.model import build_model
from rnn_cli.reference import forward, lstm_step

TOLERANCE = 1e-5
VOCABULARY = 50


def random_model(layers: list[LayerConfig], masked: bool, seed: int = 0, pooling: str = "last",
                 bigram_buckets: int = 0) -> keras.Model:
    """A model with weights large enough that a wrong gate or bias moves the output visibly."""
    config = ModelConfig(embedding_dim=6, layers=tuple(layers), pooling=pooling, bigram_buckets=bigram_buckets)
    model = build_model(config, VOCABULARY, mask_zero=masked)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.6, w.shape) for w in model.get_weights()])
    return model


def token_batch(padding: str, seed: int = 1, steps: int = 14, vocabulary: int = VOCABULARY) -> np.ndarray:
    """Eight reviews of 3..steps tokens below `vocabulary`, padded with 0 on one side."""
    rng = np.random.default_rng(seed)
    batch = np.zeros((8, steps), dtype=np.int32)
    for row, length in enumerate(rng.integers(3, steps + 1, size=8)):
        tokens = rng.integers(1, vocabulary, size=length)
        if padding == "pre":
            batch[row, steps - length:] = tokens
        else:
            batch[row, :length] = tokens
    return batch


def assert_layers_match(model: keras.Model, tokens: np.ndarray) -> None:
    """Every recurrent layer's outputs and the probabilities, reference against Keras."""
    trace = forward(model, tokens)
    for name, outputs in trace.sequences.items():
        layer = model.get_layer(name)
        keras_out = keras.Model(model.inputs[0], layer.output)(tokens, training=False)
        expected = outputs if len(keras_out.shape) == 3 else trace.last
        np.testing.assert_allclose(expected, np.asarray(keras_out), atol=TOLERANCE, err_msg=name)
    if "pooling" in [layer.name for layer in model.layers]:
        pooled = keras.Model(model.inputs[0], model.get_layer("pooling").output)(tokens, training=False)
        np.testing.assert_allclose(trace.last, np.asarray(pooled), atol=TOLERANCE, err_msg="pooling")
    keras_probabilities = model.predict(tokens, verbose=0).reshape(-1)
    np.testing.assert_allclose(trace.probabilities, keras_probabilities, atol=TOLERANCE)
    first = next(iter(trace.sequences.values()))
    assert np.ptp(first) > 0.5  # the weights make states differ widely: the comparison has teeth


def layer(kind, bidirectional=False):
    return LayerConfig(type=kind, units=5, bidirectional=bidirectional)


STACKS = {
    "simple_rnn": [layer("simple_rnn")],
    "lstm": [layer("lstm")],
    "gru": [layer("gru")],
    "stacked": [layer("lstm"), layer("simple_rnn"), layer("gru")],
    "bidirectional": [layer("lstm", bidirectional=True)],
    "stacked_bidirectional": [layer("gru", bidirectional=True), layer("simple_rnn", bidirectional=True)],
}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_reference_matches_keras_on_random_weights(stack, masked, padding):
    assert_layers_match(random_model(STACKS[stack], masked), token_batch(padding))


@pytest.mark.parametrize("stack", ["lstm", "gru", "stacked_bidirectional"])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_reference_matches_models_after_training(stack, masked):
    """Weights moved by training (not only drawn at random) read the same way."""
    model = build_model(ModelConfig(embedding_dim=6, layers=tuple(STACKS[stack])), VOCABULARY, mask_zero=masked)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    tokens = np.concatenate([token_batch("post", seed=s) for s in range(8)])
    labels = (tokens == 7).any(axis=1).astype("float32")  # positive: the review holds token 7
    model.fit(tokens, labels, epochs=3, batch_size=16, verbose=0)
    assert_layers_match(model, token_batch("post", seed=99))


def test_reference_matches_the_tiny_run_trained_by_rnn_train(trained_run):
    model = keras.saving.load_model(trained_run / runs.MODEL)
    tokens = token_batch("post", steps=20, vocabulary=40)  # the tiny config's num_words
    trace = forward(model, tokens)
    np.testing.assert_allclose(trace.probabilities, model.predict(tokens, verbose=0).reshape(-1), atol=TOLERANCE)


def test_a_swapped_gate_order_is_caught(monkeypatch):
    """The parity check can fail: LSTM with its forget and input gates swapped differs from Keras."""
    def swapped(x_t, state, kernel, recurrent_kernel, bias):
        blocks = lambda a: np.concatenate([np.split(a, 4, axis=-1)[i] for i in (1, 0, 2, 3)], axis=-1)  # noqa: E731
        return lstm_step(x_t, state, blocks(kernel), blocks(recurrent_kernel), blocks(bias))

    monkeypatch.setitem(reference.STEPS, "LSTM", (swapped, 2))
    with pytest.raises(AssertionError):
        assert_layers_match(random_model([layer("lstm")], masked=True), token_batch("post"))


POOLINGS = ["max", "mean", "max_mean", "attention"]


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("stack, masked, padding", [("gru", True, "post"), ("gru", False, "post"),
                                                    ("stacked_bidirectional", False, "pre")])
def test_reference_matches_keras_for_every_pooling(pooling, stack, masked, padding):
    assert_layers_match(random_model(STACKS[stack], masked, pooling=pooling), token_batch(padding))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_pooling_leaves_padding_out(pooling, masked):
    """A review padded in a batch pools to what it pools to alone: padding enters no max, mean or softmax.
    (Unmasked, the recurrent layer itself reads left padding first, so right padding is the fair test.)"""
    model = random_model(STACKS["bidirectional"] if masked else STACKS["gru"], masked, pooling=pooling)
    pooled = keras.Model(model.inputs[0], model.get_layer("pooling").output)
    batch = token_batch("post", steps=20)
    lengths = (batch != 0).sum(axis=1)
    alone = np.concatenate([np.asarray(pooled(batch[i:i + 1, :n], training=False)) for i, n in enumerate(lengths)])
    together = np.asarray(pooled(batch, training=False))
    np.testing.assert_allclose(together, alone, atol=1e-6)
    if pooling in ("max", "max_mean"):  # and the padding's own outputs would have changed the max
        outputs = keras.Model(model.inputs[0], model.layers[-3].output)(batch, training=False)
        assert not np.allclose(np.asarray(outputs).max(axis=1)[:, :5], together[:, :5])


def test_a_review_without_tokens_pools_to_zeros():
    for pooling in POOLINGS:
        model = random_model(STACKS["gru"], masked=True, pooling=pooling)
        pooled = keras.Model(model.inputs[0], model.get_layer("pooling").output)
        empty = np.zeros((2, 6), dtype=np.int32)
        assert np.all(np.asarray(pooled(empty, training=False)) == 0)
        assert np.all(forward(model, empty).last == 0)


@pytest.mark.parametrize("stack, masked, padding", [("gru", True, "post"), ("simple_rnn", False, "pre"),
                                                    ("stacked_bidirectional", True, "pre")])
def test_reference_matches_keras_with_word_pairs(stack, masked, padding):
    assert_layers_match(random_model(STACKS[stack], masked, bigram_buckets=37), token_batch(padding))


def test_word_pairs_are_hashed_and_read_only_between_two_words():
    """Each step's pair vector is the row (previous * words + this) mod buckets, zero at a review's first
    token and next to padding."""
    model = random_model(STACKS["gru"], masked=True, bigram_buckets=37)
    pairs = model.get_layer("bigrams")
    table = np.asarray(pairs.embeddings)
    tokens = np.array([[0, 0, 4, 9, 2], [4, 9, 2, 0, 0]], dtype=np.int32)
    vectors = np.asarray(pairs([np.zeros((*tokens.shape, 6), dtype=np.float32), tokens]))
    for row, start in ((0, 2), (1, 0)):
        assert np.all(vectors[row, :start + 1] == 0) and np.all(vectors[row, start + 3:] == 0)
        np.testing.assert_allclose(vectors[row, start + 1], table[(4 * VOCABULARY + 9) % 37], atol=1e-7)
        np.testing.assert_allclose(vectors[row, start + 2], table[(9 * VOCABULARY + 2) % 37], atol=1e-7)
