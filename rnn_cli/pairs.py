"""model.bigram_buckets: a vector for each pair of adjacent words, added to the second word's own.

A linear model on word pairs (bigrams) beats a word-level recurrent net trained from scratch on IMDB
(docs/results.md): a pair such as "not good" is one feature to it, while the net has to learn the pair
from word order and 22,500 reviews. This layer gives the net the pairs as inputs, as fastText's
`-wordNgrams 2 -bucket N` gives its bag of words: the pair (previous, this) of token ids is hashed to one
of `buckets` rows, key = previous * words + this, row = key mod buckets (two pairs may share a row; a
prime number of buckets spreads them). The table starts at zero, so training starts from the word-only
model. No pair is read at a review's first token or next to padding (token 0): the vector is zero there.
The pairs are computed inside the model from the token ids, so the tokeniser, export and serve are
unchanged.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rnn_cli")
class WordPairs(keras.layers.Layer):
    """[(batch, time, output_dim) word vectors, (batch, time) token ids] -> the word vectors with each
    step's word-pair vector added; the word vectors' mask (padding) passes through."""

    def __init__(self, buckets: int, output_dim: int, words: int, **kwargs):
        super().__init__(**kwargs)  # words * words must fit in int32 (JAX's integers): config.PAIR_WORDS
        self.buckets, self.output_dim, self.words = buckets, output_dim, words

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.buckets, self.output_dim), initializer="zeros",
                                          name="embeddings")

    def call(self, inputs):
        words, tokens = inputs
        tokens = ops.cast(tokens, "int32")
        previous = ops.pad(tokens[:, :-1], [[0, 0], [1, 0]])
        rows = ops.mod(previous * self.words + tokens, self.buckets)
        read = ops.logical_and(ops.not_equal(previous, 0), ops.not_equal(tokens, 0))
        vectors = ops.take(self.embeddings, rows, axis=0)
        return words + vectors * ops.expand_dims(ops.cast(read, vectors.dtype), -1)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "buckets": self.buckets, "output_dim": self.output_dim,
                "words": self.words}

