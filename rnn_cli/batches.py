"""Reviews to the batches Keras trains on: length-bucketed and masked, or all padded to maxlen.

Recurrent layers pay per time step, and most reviews are far shorter than maxlen. With bucketing, each epoch shuffles the reviews, sorts them by length within pools of
`POOL` batches, cuts the pools into batches and shuffles the batch order: batches change every epoch
but hold reviews of similar length. Each batch is padded on the right only up to the next multiple of
`bucket_width` (at most maxlen), and the model masks the padding, so the result is the same as
padding everything to maxlen with a mask, for about half the steps. Right padding is what the cuDNN
kernels accept with a mask. Without bucketing every batch is padded to maxlen on the configured
side and nothing is masked: the book's recipe.

A training's one short batch (the reviews left over after the full ones) would be one more shape
for XLA to compile and keep. Filled up to the batch size with copies of
its own reviews weighted 0, it takes the shape of a full batch of its bucket; under a loss that
averages over the sample weights (`model.compile_model`) its step is the step on its own reviews.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from rnn_cli.config import DataConfig
from rnn_cli.corpus import Reviews

POOL = 50  # batches sorted together: enough to group similar lengths, few enough to vary batches


@dataclass(frozen=True)
class Batches:
    """The batches of one split; `seed` shuffles them per epoch, None keeps one fixed order."""

    reviews: Reviews
    batch_size: int
    data: DataConfig
    masked: bool  # the model masks padding: bucket and right-pad; else pad to maxlen, no mask
    seed: int | None = None
    filled: bool = False  # a short batch is filled up with zero-weight copies; batches carry weights

    def __len__(self) -> int:
        return -(-len(self.reviews) // self.batch_size)

    def indices(self, epoch: int = 0) -> list[np.ndarray]:
        """The review indices of every batch of `epoch`, in the order they are fed."""
        n = len(self.reviews)
        if self.seed is None:
            # Inference: sorted by length, so few distinct shapes and little padding.
            order = np.argsort(self.lengths, kind="stable") if self.masked else np.arange(n)
            return self._cut(order)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n)
        if not self.masked:
            return self._cut(order)
        pool = POOL * self.batch_size
        batches = [batch for start in range(0, n, pool)
                   for batch in self._cut(self._by_length(order[start:start + pool]))]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        # The longest full batch first: TensorFlow's allocator pool then grows once, to the largest
        # buffers, instead of again for each longer shape as it comes (less peak memory).
        first = max(range(len(batches)), key=lambda i: (len(batches[i]), self.lengths[batches[i]].max()))
        return [batches[first], *batches[:first], *batches[first + 1:]]

    def batch(self, index: np.ndarray) -> tuple[np.ndarray, ...]:
        """Token ids (batch, length) and float labels of the reviews at `index`; when `filled`, also
        float sample weights: 1 for the reviews at `index`, 0 for the copies filling a short batch."""
        # Filled up to a full batch, or to every review when there are fewer than a batch.
        rows = np.resize(index, min(self.batch_size, len(self.reviews))) if self.filled else index
        reviews = self.reviews.take(rows)
        padding = "post" if self.masked else self.data.padding
        x = reviews.padded(self.length(index), padding, self.data.truncating)
        labels = reviews.labels.astype(np.float32)
        if not self.filled:
            return x, labels
        return x, labels, (np.arange(len(rows)) < len(index)).astype(np.float32)

    def length(self, index: np.ndarray) -> int:
        """Time steps of the batch at `index`: its bucket, or maxlen."""
        if not self.masked:
            return self.data.maxlen
        return self.buckets[bisect.bisect_left(self.buckets, int(self.lengths[index].max()))]

    @functools.cached_property
    def buckets(self) -> list[int]:
        return bucket_lengths(self.data)

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """Time steps each review needs: its length, at most maxlen."""
        return np.minimum(self.reviews.lengths, self.data.maxlen)

    def dataset(self, first_epoch: int = 0) -> tf.data.Dataset:
        """A tf.data pipeline for Keras; each pass over it yields the next epoch's batches."""
        epochs = itertools.count(first_epoch)

        def generate():
            for index in self.indices(next(epochs)):
                yield self.batch(index)

        # Both dimensions open: batches differ in length and, unless filled, the last one in size.
        spec = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.float32))
        if self.filled:
            spec = (*spec, tf.TensorSpec((None,), tf.float32))
        dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)

    def _cut(self, order: np.ndarray) -> list[np.ndarray]:
        return [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def _by_length(self, index: np.ndarray) -> np.ndarray:
        return index[np.argsort(self.lengths[index], kind="stable")]


def bucket_lengths(data: DataConfig) -> list[int]:
    """Every length a bucketed batch can have: the multiples of bucket_width below maxlen, and maxlen."""
    return [*range(data.bucket_width, data.maxlen, data.bucket_width), data.maxlen]
