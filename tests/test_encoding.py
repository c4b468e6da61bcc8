"""rnn_cli/encoding.py: text -> ids -> a padded batch, the same in Python, as TensorFlow ops (the SavedModel
export) and as the Python a token-id export's client runs."""

import re

import numpy as np
import pytest
import tensorflow as tf

from rnn_cli.config import DataConfig
from rnn_cli.corpus import Reviews, Vocabulary
from rnn_cli.encoding import (OOV, batch_ids, client_encoder, fixed_ids, input_length, tf_ids, tf_lower_table,
                              tf_padded, tf_vocabulary_table, tf_words, tokenize)

WORDS = ("the", "film", "was", "don't", "naïve", "東京", "2024", "great", "ΟΔΟΣ".lower())
TEXTS = ["The film was GREAT.<br /><br />Don't miss it!", "", "zzz qqq", "naïve 東京 ΟΔΟΣ, 2024's",
         " ".join(["the film was great"] * 6), "\tthe\x00film\u2028was\u00a0great_and the"]


def tf_tokenize(texts: list[str]) -> list[list[str]]:
    return [[w.decode() for w in row] for row in tf_words(tf.constant(texts), tf_lower_table()).to_list()]


def test_the_tensorflow_tokeniser_gives_tokenize_s_words_for_every_code_point():
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [" ".join(points),  # each character alone
             " ".join(f"ab{c}cd" for c in points),  # inside a word: a letter or digit joins it
             " ".join(f"a'{c}'b" for c in points),  # beside apostrophes
             "ΣΑΣ ΟΔΟΣ. Σ İstanbul <br/>x<BR   />y<br\t/>z<br\u00a0/>w <b r/> don''t 'tis' a'''b _x_"]
    assert tf_tokenize(texts) == [tokenize(text) for text in texts]


def test_the_tokeniser_check_can_fail():
    # The ASCII-only classes RE2 would use unasked (\w, \s) split non-ASCII words differently.
    assert tf_tokenize(["naïve 東京"]) == [["naïve", "東京"]]
    ascii_words = re.findall(r"[A-Za-z0-9]+(?:'[A-Za-z0-9]+)*", "naïve 東京")
    assert ascii_words != tokenize("naïve 東京")


def client_ids(data: DataConfig, masked: bool, vocabulary: Vocabulary, texts: list[str]) -> np.ndarray:
    """The export README's `encode`, run as a client runs it: vocab.json's fields, MAXLEN, `re`."""
    payload = {"start": 1, "oov": OOV, "first_word": 3, "words": list(vocabulary.words)}
    scope = {"re": re, "MAXLEN": data.maxlen, "vocabulary": payload,
             "index": {word: i + payload["first_word"] for i, word in enumerate(payload["words"])}}
    exec("\n".join(client_encoder(data, masked)), scope)  # noqa: S102 - the README's own code
    return np.array([scope["encode"](text) for text in texts], dtype=np.int32)


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_python_tensorflow_and_the_clients_code_give_the_same_ids(masked, padding, truncating):
    """One text, three encoders: Python (training, predict, explain, serve), the SavedModel's TensorFlow
    graph, the token-id exports' README code; every padding and truncating setting, reviews longer than maxlen."""
    data = DataConfig(maxlen=9, padding=padding, truncating=truncating, bucketing=False)
    vocabulary = Vocabulary(WORDS)
    reviews = Reviews.from_lists([vocabulary.encode(text)[0] for text in TEXTS], np.zeros(len(TEXTS)))
    python = fixed_ids(reviews, data, masked)
    ids, _ = tf_ids(tf_words(tf.constant(TEXTS), tf_lower_table()), tf_vocabulary_table(list(WORDS)))
    graph = tf_padded(ids, data, masked).numpy()
    if masked:  # the graph pads to the longest review (any length reads alike under a mask)
        graph = np.pad(graph, [(0, 0), (0, data.maxlen - graph.shape[1])])
    np.testing.assert_array_equal(graph, python)
    np.testing.assert_array_equal(client_ids(data, masked, vocabulary, TEXTS), python)
    assert (python[:, 0] == 1).sum() + (python[:, -1] == 1).sum() >= 1 and (python == OOV).any()  # start, unknown
    side = "post" if masked else padding
    empty = python[TEXTS.index("")]
    assert (empty[0] == 1) if side == "post" else (empty[-1] == 1)


def test_a_batch_is_padded_to_its_bucket_unmasked_and_to_its_longest_review_masked():
    reviews = Reviews.from_lists([[1, 5, 6], [1, 7, 8, 9, 4, 3]], [0, 1])
    bucketed = DataConfig(maxlen=10, bucket_width=4)
    assert batch_ids(reviews, bucketed, masked=True).tolist() == [[1, 5, 6, 0, 0, 0], [1, 7, 8, 9, 4, 3]]
    assert batch_ids(reviews, bucketed, masked=False).tolist() == [[0, 0, 0, 0, 0, 1, 5, 6], [0, 0, 1, 7, 8, 9, 4, 3]]
    assert input_length(9, bucketed, masked=False) == 10 and input_length(30, bucketed, masked=True) == 10
    assert batch_ids(reviews, DataConfig(maxlen=7, bucketing=False, padding="post"), masked=False).shape == (2, 7)
