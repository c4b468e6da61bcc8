"""rnn_cli.corpus: the tokeniser, reviews stored flat and padded as Keras pads, the vocabulary."""

import keras
import numpy as np
import pytest

from rnn_cli.corpus import Reviews, Vocabulary
from rnn_cli.encoding import PAD, tokenize


def test_tokenize_lowercases_and_strips_breaks_and_punctuation():
    text = "A <br />GREAT film!<br/>Don't miss it... (10/10) - really."
    assert tokenize(text) == ["a", "great", "film", "don't", "miss", "it", "10", "10", "really"]
    assert tokenize("") == []
    assert tokenize("!!! ...") == []


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [1, 5, 500])
def test_padding_matches_keras(padding, truncating, maxlen):
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 50, size=n)) for n in (0, 1, 4, 5, 9, 700)]
    reviews = Reviews.from_lists(sequences, np.zeros(len(sequences)))
    ours = reviews.padded(maxlen, padding, truncating)
    theirs = keras.utils.pad_sequences(sequences, maxlen=maxlen, padding=padding, truncating=truncating)
    assert ours.shape == (6, maxlen) and ours.dtype == np.int32
    np.testing.assert_array_equal(ours, theirs)


def test_pre_padding_keeps_review_end_at_the_right():
    reviews = Reviews.from_lists([[1, 5, 6, 7]], [1])
    np.testing.assert_array_equal(reviews.padded(6), [[PAD, PAD, 1, 5, 6, 7]])
    np.testing.assert_array_equal(reviews.padded(6, padding="post"), [[1, 5, 6, 7, PAD, PAD]])
    np.testing.assert_array_equal(reviews.padded(2), [[6, 7]])
    np.testing.assert_array_equal(reviews.padded(2, truncating="post"), [[1, 5]])


def test_mapped_reviews_keep_16_bits_when_the_ids_fit():
    reviews = Reviews.from_lists([[1, 2], [3]], [0, 1])
    small = reviews.mapped(np.array([0, 1, 7, 65535], dtype=np.int32))
    assert small.tokens.dtype == np.uint16 and small.tokens.tolist() == [1, 7, 65535]
    large = reviews.mapped(np.array([0, 1, 7, 65536], dtype=np.int32))
    assert large.tokens.dtype == np.int32 and large.tokens.tolist() == [1, 7, 65536]
    # Batches are int32 either way.
    assert small.padded(3).dtype == np.int32 and small.padded(3).tolist() == [[0, 1, 7], [0, 0, 65535]]


def test_take_reorders_reviews():
    reviews = Reviews.from_lists([[1, 2], [3], [4, 5, 6]], [0, 1, 0])
    picked = reviews.take(np.array([2, 0]))
    assert picked.padded(3, padding="post").tolist() == [[4, 5, 6], [1, 2, 0]]
    assert picked.labels.tolist() == [0, 0]


def test_vocabulary_save_and_load(tmp_path):
    vocabulary = Vocabulary(("a", "b", "café"))
    vocabulary.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocabulary
