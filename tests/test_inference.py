"""rnn_cli.inference: bucketed predictions equal padding to maxlen, and never run under XLA."""

import numpy as np
import pytest

from rnn_cli.encoding import bucket_lengths
from rnn_cli.config import LayerConfig, ModelConfig
from rnn_cli.inference import predict_probabilities
from rnn_cli.model import build_model, masks_padding
from tests.conftest import random_reviews as reviews
from tests.test_batches import MAXLEN, data


@pytest.mark.parametrize("layer", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_bucketed_predictions_equal_padding_everything_to_maxlen(layer, jit_compile):
    """The mask makes bucketing invisible: same outputs as pre-padding to maxlen with a mask, the
    latter computed as the model was compiled (with XLA or not)."""
    model = build_model(ModelConfig(embedding_dim=6, layers=(LayerConfig(type=layer, units=5),)),
                        num_words=20, mask_zero=True)
    model.compile(loss="binary_crossentropy", jit_compile=jit_compile)
    source = reviews(n=120, seed=1)
    assert masks_padding(model)
    ours = predict_probabilities(model, source, data())
    assert model.jit_compile is jit_compile  # the model's own setting kept
    full = model.predict(source.padded(MAXLEN, "pre", "pre"), verbose=0).reshape(-1)
    np.testing.assert_allclose(ours, full, atol=1e-5)


def test_prediction_runs_without_xla_whatever_the_model_was_compiled_with():
    """Keras caches its predict function; each call must build an uncompiled one, and leave none
    behind for the model's own XLA setting to find."""
    model = build_model(ModelConfig(embedding_dim=6, layers=(LayerConfig(type="simple_rnn", units=5),)),
                        num_words=20, mask_zero=True)
    model.compile(loss="binary_crossentropy", jit_compile=True)
    built = []
    make = model.make_predict_function

    def spy(force=False):
        if model.predict_function is None or force:
            built.append(model.jit_compile)
        return make(force)

    model.make_predict_function = spy
    source = reviews(n=40, seed=2)
    first = predict_probabilities(model, source, data())
    second = predict_probabilities(model, source, data())
    assert built == [False, False]
    assert model.jit_compile is True and model.predict_function is None
    np.testing.assert_array_equal(first, second)


def test_unmasked_model_gets_the_configured_padding():
    model = build_model(ModelConfig(embedding_dim=6, layers=(LayerConfig(type="simple_rnn", units=5),)),
                        num_words=20)
    source = reviews(n=40)
    assert not masks_padding(model)
    ours = predict_probabilities(model, source, data(padding="pre", bucketing=False))
    full = model.predict(source.padded(MAXLEN, "pre", "pre"), verbose=0).reshape(-1)
    np.testing.assert_allclose(ours, full, atol=1e-6)


def test_an_unmasked_bucketed_model_scores_each_review_at_its_own_bucket():
    """Left-padded buckets (JAX and PyTorch on a GPU): a review's padding, so its score, never
    depends on the other reviews it is batched with."""
    model = build_model(ModelConfig(embedding_dim=6, layers=(LayerConfig(type="lstm", units=5),)), num_words=20)
    source, config = reviews(n=40), data()
    buckets = bucket_lengths(config)
    ours = predict_probabilities(model, source, config)
    for i in (0, 7, 39):
        one = source.take(np.array([i]))
        steps = next(b for b in buckets if b >= min(int(one.lengths[0]), MAXLEN))
        alone = model.predict(one.padded(steps, "pre", "pre"), verbose=0).reshape(-1)
        np.testing.assert_allclose(ours[i], alone[0], atol=1e-6)
