"""Text -> token ids -> a padded batch: the one encoder every consumer uses, in Python and as TensorFlow ops.

Python reads the training data (`rnn_cli.corpus`, `rnn_cli.batches`), `rnn predict`, `rnn explain` and
`rnn serve`; the same steps as TensorFlow ops make the raw-text signature of the SavedModel export, and as
Python source the encoder a client of an ONNX or LiteRT export runs (its README). Each step below has
its Python form and its TensorFlow form side by side; tests/test_encoding.py checks that they agree.

1. words: `<br />` becomes a space, the text is lower-cased, and runs of letters or digits (any script,
   apostrophes kept inside a word) are the words (`tokenize`; `tf_words`);
2. ids: the vocabulary's id of each word, OOV for a word it lacks, START in front (`Vocabulary.encode`
   in rnn_cli/corpus.py; `tf_ids`);
3. cut to maxlen, keeping the last ids (truncating "pre") or the first;
4. padding with PAD: after the ids for a model that masks padding, before them for unmasked length
   buckets, else where data.padding says (`padding_side`); to the batch's bucket (`input_length`) or to
   maxlen (`fixed_length`; `tf_padded`).

Index conventions are Keras': 0 pads, 1 starts every review, 2 stands for a word outside the vocabulary,
and words take 3, 4, ... by falling frequency in the training split.
"""

from __future__ import annotations

import functools
import re

import numpy as np

PAD, START, OOV, FIRST_WORD = 0, 1, 2, 3
# Bump when tokenize() changes: it is part of the encoded corpus' cache key.
TOKENIZER_VERSION = 1
BREAK = r"<br\s*/?>"
# Runs of letters or digits, keeping inner apostrophes ("don't"); everything else separates.
WORD = r"[^\W_]+(?:'[^\W_]+)*"
_BREAK = re.compile(BREAK, re.IGNORECASE)
_WORD = re.compile(WORD)


# 1. Words ---------------------------------------------------------------------------------------------

def tokenize(text: str) -> list[str]:
    """Lower-cased words of a review, with `<br />` and punctuation removed."""
    return _WORD.findall(_BREAK.sub(" ", text).lower())


def tf_words(texts, lower):
    """`tokenize` as TensorFlow ops: each text's words, [batch, (words)]. `lower`: `tf_lower_table()`."""
    import tensorflow as tf

    break_pattern, word_pattern = re2_patterns()
    texts = tf.strings.regex_replace(texts, break_pattern, " ")
    texts = tf.strings.regex_replace(texts, r"\x00", " ")  # tf.strings.lower stops at a NUL; it separates words
    texts = tf.strings.lower(texts, encoding="utf-8")
    # Letters whose lower case TensorFlow's Unicode tables lack but Python's have (newer ones).
    chars = tf.strings.unicode_decode(texts, "UTF-8")
    fixed = tf.ragged.map_flat_values(lower.lookup, chars)
    chars = tf.ragged.map_flat_values(lambda c, f: tf.where(f >= 0, f, c), chars, fixed)
    texts = tf.strings.unicode_encode(chars, "UTF-8")
    # findall as a replacement: each word kept and followed by a space, every other character a space.
    return tf.strings.split(tf.strings.regex_replace(texts, word_pattern, r"\1 "))


def tf_lower_table():
    """The lookup table `tf_words` lower-cases with, beside `tf.strings.lower` (`lower_case_fixes`)."""
    import tensorflow as tf

    keys, values = lower_case_fixes()
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=-1)


def tf_vocabulary_table(words: list[str]):
    """The lookup table `tf_ids` maps words with: `words[i]` to id i + FIRST_WORD, any other word to OOV."""
    import tensorflow as tf

    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(words, tf.string), tf.range(len(words), dtype=tf.int64)
                                            + FIRST_WORD), default_value=OOV)


@functools.lru_cache(maxsize=1)
def re2_patterns() -> tuple[str, str]:
    """`tokenize`'s two patterns in RE2 (TensorFlow's regex engine), their character classes spelled
    out from Python's own: RE2's \\w and \\s are ASCII only, Python's are Unicode."""
    word = character_class(lambda c: re.fullmatch(r"[^\W_]", c) is not None)
    space = character_class(lambda c: re.fullmatch(r"\s", c) is not None)
    return rf"<[bB][rR]{space}*/?>", rf"(?s)({word}+(?:'{word}+)*)|."


def character_class(member) -> str:
    """An RE2 class of every code point for which `member(chr(c))` holds, as ranges."""
    ranges, start = [], None
    for c in range(0x110001):
        inside = c <= 0x10FFFF and not 0xD800 <= c <= 0xDFFF and member(chr(c))
        if inside and start is None:
            start = c
        elif not inside and start is not None:
            ranges.append(rf"\x{{{start:x}}}" if start == c - 1 else rf"\x{{{start:x}}}-\x{{{c - 1:x}}}")
            start = None
    return "[" + "".join(ranges) + "]"


@functools.lru_cache(maxsize=1)
def lower_case_fixes():
    """Code points that `tf.strings.lower` leaves as they are but `str.lower` maps to one other: (keys,
    values) int32 tensors for a lookup table."""
    import tensorflow as tf

    points = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    chars = [chr(c) for c in points]
    lowered = tf.strings.lower(tf.constant(chars), encoding="utf-8").numpy()
    pairs = [(c, ord(chars[i].lower())) for i, c in enumerate(points)
             if lowered[i].decode("utf-8") == chars[i] and len(chars[i].lower()) == 1 and chars[i].lower() != chars[i]]
    keys, values = zip(*pairs) if pairs else ((0,), (0,))
    return tf.constant(keys, tf.int32), tf.constant(values, tf.int32)


# 2. Ids (Python: Vocabulary.encode) ---------------------------------------------------------------------

def tf_ids(words, vocabulary):
    """Each text's ids, START first, from its `tf_words` and a lookup table of the vocabulary (OOV by
    default): (ids, word ids without START), both [batch, (ids)] int64."""
    import tensorflow as tf

    word_ids = tf.ragged.map_flat_values(vocabulary.lookup, words)
    start = tf.RaggedTensor.from_tensor(tf.fill([words.nrows(), 1], tf.constant(START, tf.int64)))
    return tf.concat([start, word_ids], axis=1), word_ids


# 3. and 4. Cut and padded ---------------------------------------------------------------------------------

def padding_side(data, masked: bool, bucketed: bool | None = None) -> str:
    """Where a model's batches are padded: on the right when it masks, on the left for unmasked
    buckets (`bucketed`, default data.bucketing), else as data.padding says."""
    bucketed = data.bucketing if bucketed is None else bucketed
    return "post" if masked else "pre" if bucketed else data.padding


BUCKET_WIDTH = 128  # data.bucket_width when null, for a model whose loops run every padded step


def bucket_width(data, skips_padding: bool = False, longest: int | None = None) -> int:
    """data.bucket_width; when null, 128, or for a model whose every training loop skips the padding past each
    batch's longest review (`skips_padding`) half of maxlen, or of the `longest` review when shorter (rounded up):
    two lengths to compile, whose wider padding costs such a model little (docs/performance.md)."""
    if data.bucket_width is not None:
        return data.bucket_width
    if not skips_padding:
        return BUCKET_WIDTH
    return -(-max(1, min(data.maxlen, data.maxlen if longest is None else longest)) // 2)


def bucket_lengths(data) -> list[int]:
    """Every length a bucketed batch can have: the multiples of the bucket width below maxlen, and maxlen (a null
    width as for a model whose loops run every step; training resolves it first, `training.batch_data`)."""
    width = bucket_width(data)
    return [*range(width, data.maxlen, width), data.maxlen]


def input_length(longest: int, data, masked: bool) -> int:
    """Time steps of a batch whose longest review has `longest` ids, as training shaped it: the longest
    (a masked model skips the padding, so any length scores alike), the bucket above it, or maxlen."""
    longest = min(longest, data.maxlen)
    if masked:
        return longest
    if data.bucketing:
        return next(length for length in bucket_lengths(data) if length >= longest)
    return data.maxlen


def batch_ids(reviews, data, masked: bool) -> np.ndarray:
    """`reviews` (a `corpus.Reviews`) as one batch the model reads as it was trained: cut, padded on
    the model's side to `input_length`."""
    length = input_length(int(reviews.lengths.max()), data, masked)
    return reviews.padded(length, padding_side(data, masked), data.truncating)


def fixed_ids(reviews, data, masked: bool) -> np.ndarray:
    """`reviews` as an (n, maxlen) batch, padded as the exports pad (`tf_padded`, `client_encoder`: after the
    ids for a masked model, else as data.padding says): the token-id exports' input, which has one shape."""
    return reviews.padded(data.maxlen, padding_side(data, masked, bucketed=False), data.truncating)


def tf_padded(ids, data, masked: bool):
    """`tf_ids`' ids cut to maxlen and padded on the model's side: to the longest row when the model masks
    padding (any length scores alike), else to maxlen. [batch, steps] int64."""
    import tensorflow as tf

    ids = ids[:, -data.maxlen:] if data.truncating == "pre" else ids[:, :data.maxlen]
    side = padding_side(data, masked, bucketed=False)
    dense = ids.to_tensor(PAD, shape=None if masked else [None, data.maxlen])
    if side == "post":
        return dense
    # Reverse each row's ids, then the whole row: the ids in order at the end, zeros in front.
    return tf.reverse(tf.reverse_sequence(dense, ids.row_lengths(), seq_axis=1, batch_axis=0), axis=[1])


# All four as a client's Python (the README of an ONNX or LiteRT export) -------------------------------------

def client_encoder(data, masked: bool) -> list[str]:
    """Source lines of `encode(text)`, the (maxlen,) ids of one text, for a client that has vocab.json and
    MAXLEN; the steps above with nothing but `re`."""
    keep = "ids[-MAXLEN:]" if data.truncating == "pre" else "ids[:MAXLEN]"
    post = padding_side(data, masked, bucketed=False) == "post"
    pad = "ids + [0] * (MAXLEN - len(ids))" if post else "[0] * (MAXLEN - len(ids)) + ids"
    return ['def encode(text):',
            f'    text = re.sub(r"{BREAK}", " ", text, flags=re.IGNORECASE).lower()',
            f'    words = re.findall(r"{WORD}", text)',
            '    ids = [vocabulary["start"]] + [index.get(word, vocabulary["oov"]) for word in words]',
            f'    ids = {keep}', f'    return {pad}']
