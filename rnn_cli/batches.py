"""Reviews to the batches Keras trains on: length-bucketed and masked, or all padded to maxlen.

Recurrent layers pay per time step, and most reviews are far shorter than maxlen. With bucketing, each epoch shuffles the reviews, sorts them by length within pools of
`POOL` batches, cuts the pools into batches and shuffles the batch order: batches change every epoch
but hold reviews of similar length. Each batch is padded on the right only up to the next multiple of
`bucket_width` (at most maxlen), and the model masks the padding, so the result is the same as
padding everything to maxlen with a mask, for about half the steps. Right padding is what the cuDNN
kernels accept with a mask. Where a GPU's kernels take no mask (Keras' JAX and PyTorch backends,
`rnn_cli.backends.plan`), buckets are padded on the left and nothing is masked; then a batch of
inference never spans two buckets, so that each review's padding, and its score, is its own.
Without bucketing every batch is padded to maxlen on the configured side and nothing is masked: the
book's recipe.

Keras takes the batches as a tf.data pipeline on TensorFlow and as a `keras.utils.PyDataset` on the
other backends, which then never import TensorFlow.

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

from rnn_cli.config import DataConfig
from rnn_cli.corpus import Reviews
from rnn_cli.encoding import bucket_lengths, padding_side

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
    bucketed: bool | None = None  # None: as masked; True without masked: left-padded buckets
    # Every batch padded to the bucket of the split's longest review: one shape to compile, for a model whose
    # loops skip the padding past each batch's longest review (`projected.skips_padding`).
    one_length: bool = False

    def __len__(self) -> int:
        if self.seed is None:
            return len(self.fixed_order)
        return -(-len(self.reviews) // self.batch_size)

    def indices(self, epoch: int = 0) -> list[np.ndarray]:
        """The review indices of every batch of `epoch`, in the order they are fed."""
        n = len(self.reviews)
        if self.seed is None:
            return self.fixed_order
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n)
        if not self.is_bucketed:
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
        padding = padding_side(self.data, self.masked, self.is_bucketed)
        x = reviews.padded(self.length(index), padding, self.data.truncating)
        labels = reviews.labels.astype(np.float32)
        if not self.filled:
            return x, labels
        return x, labels, (np.arange(len(rows)) < len(index)).astype(np.float32)

    def length(self, index: np.ndarray) -> int:
        """Time steps of the batch at `index`: its bucket (with `one_length`, the split's longest review's), or maxlen."""
        if not self.is_bucketed:
            return self.data.maxlen
        longest = self.lengths.max(initial=0) if self.one_length else self.lengths[index].max()
        return self.buckets[bisect.bisect_left(self.buckets, int(longest))]

    @functools.cached_property
    def fixed_order(self) -> list[np.ndarray]:
        """The batches without a shuffling seed (validation, inference): sorted by length, so few
        distinct shapes and little padding; unmasked buckets are cut at each bucket's end too."""
        if not self.is_bucketed:
            return self._cut(np.arange(len(self.reviews)))
        order = np.argsort(self.lengths, kind="stable")
        if self.masked:
            return self._cut(order)
        bucket = np.searchsorted(self.buckets, self.lengths[order])
        return [batch for part in np.split(order, np.flatnonzero(np.diff(bucket)) + 1) for batch in self._cut(part)]

    @property
    def is_bucketed(self) -> bool:
        return self.masked if self.bucketed is None else self.bucketed

    @functools.cached_property
    def buckets(self) -> list[int]:
        return bucket_lengths(self.data)

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """Time steps each review needs: its length, at most maxlen."""
        return np.minimum(self.reviews.lengths, self.data.maxlen)

    def dataset(self, first_epoch: int = 0):
        """What Keras iterates over: each pass yields the next epoch's batches (from `first_epoch`)."""
        import keras

        if keras.backend.backend() != "tensorflow":
            return py_dataset(self, first_epoch)
        import tensorflow as tf

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


def py_dataset(batches: Batches, first_epoch: int):
    """`batches` as a keras.utils.PyDataset. Keras asks for batch 0 to len - 1 in order, once a pass
    (one worker, no shuffling), so each batch 0 after the first begins the next epoch: its order
    does not hang on when Keras calls on_epoch_end."""
    import keras

    class Epochs(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch, self.order = first_epoch - 1, None

        def __len__(self) -> int:
            return len(batches)

        def __getitem__(self, i: int):
            if i == 0 or self.order is None:
                self.epoch, self.order = self.epoch + 1, batches.indices(self.epoch + 1)
            return batches.batch(self.order[i])

    return Epochs()
