"""rnn_cli.batches: length buckets, masks, the filled short batch, the book recipe's padding."""

import keras
import numpy as np
import pytest

from rnn_cli.batches import Batches
from rnn_cli.config import DataConfig, LayerConfig, ModelConfig
from rnn_cli.corpus import Reviews
from rnn_cli.encoding import PAD, bucket_lengths, bucket_width
from rnn_cli.model import build_model
from tests.conftest import random_reviews as reviews

MAXLEN, WIDTH = 50, 8


def data(**fields) -> DataConfig:
    return DataConfig(maxlen=MAXLEN, bucket_width=WIDTH, **fields)


def all_batches(batches: Batches, epoch=0):
    return [(index, *batches.batch(index)) for index in batches.indices(epoch)]


def test_every_review_once_per_epoch_in_a_new_order_each_epoch():
    batches = Batches(reviews(), 16, data(), masked=True, seed=3)
    epochs = [np.concatenate(batches.indices(epoch)) for epoch in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(300))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    # The same (seed, epoch) gives the same batches: a resumed run continues the same schedule.
    again = Batches(reviews(), 16, data(), masked=True, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(batches.indices(1), again.indices(1)))
    assert len(batches.indices(0)) == len(batches) == 19


def test_each_shuffled_epoch_starts_with_its_longest_full_batch():
    batches = Batches(reviews(), 16, data(), masked=True, seed=3)
    for epoch in range(3):
        shapes = [batches.batch(index)[0].shape for index in batches.indices(epoch)]
        assert shapes[0] == (16, max(length for size, length in shapes if size == 16))
        assert shapes[1:] != sorted(shapes[1:])  # the rest stays shuffled


def test_bucketed_batches_are_right_padded_to_a_few_fixed_lengths():
    source = reviews()
    batches = Batches(source, 16, data(), masked=True, seed=3)
    lengths = np.minimum(source.lengths, MAXLEN)
    for index, x, y in all_batches(batches):
        assert x.dtype == np.int32 and y.dtype == np.float32 and x.shape[0] == len(index)
        assert x.shape[1] in bucket_lengths(batches.data)
        assert x.shape[1] >= lengths[index].max()
        # Right padding, as cuDNN needs under a mask: no word after the first pad of a row.
        is_pad = x == PAD
        assert np.all(is_pad[:, 1:] >= is_pad[:, :-1])
        assert np.array_equal((~is_pad).sum(axis=1), lengths[index])
        np.testing.assert_array_equal(y, source.labels[index])
    steps = sum(x.size for _, x, _ in all_batches(batches))
    assert steps < 0.6 * len(source) * MAXLEN  # far fewer steps than padding all to maxlen


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_one_length_for_validation_gives_every_bucket_s_scores_in_one_shape(kind):
    """Validation of a model whose loops skip the padding past each batch's longest review (`skips_padding`) pads
    every batch to the bucket of the split's longest review: one shape to compile, the same scores."""
    from rnn_cli.config import TrainConfig
    from rnn_cli.model import compile_model
    from rnn_cli.projected import skips_padding

    source = reviews(n=100, seed=2)
    bucketed = Batches(source, 16, data(), masked=True)
    one = Batches(source, 16, data(), masked=True, one_length=True)
    widest = bucket_lengths(one.data)[-1]
    assert {one.batch(index)[0].shape[1] for index in one.indices()} == {widest}
    assert len({bucketed.batch(index)[0].shape[1] for index in bucketed.indices()}) > 3
    for (x, y), (wide, same) in zip(map(bucketed.batch, bucketed.indices()), map(one.batch, one.indices())):
        np.testing.assert_array_equal(wide[:, :x.shape[1]], x)  # the same reviews, padded further
        assert not wide[:, x.shape[1]:].any() and np.array_equal(y, same)
    keras.utils.set_random_seed(0)
    layers = (LayerConfig(type=kind, units=5), LayerConfig(type=kind, units=5, bidirectional=True))  # stacked
    model = build_model(ModelConfig(embedding_dim=6, layers=layers), num_words=20, mask_zero=True)
    compile_model(model, TrainConfig(jit_compile=False))  # XLA computes the same loops (tests/test_projected.py)
    assert skips_padding(model)
    scores = [model.evaluate(batches.dataset(), verbose=0, return_dict=True) for batches in (bucketed, one)]
    assert scores[0]["accuracy"] == scores[1]["accuracy"]
    assert scores[0]["loss"] == pytest.approx(scores[1]["loss"], rel=1e-6)


def test_long_reviews_keep_their_ending_when_truncated():
    source = Reviews.from_lists([list(range(1, 61)), [5, 6]], [1, 0])
    x, _ = Batches(source, 2, data(), masked=True).batch(np.array([0]))
    assert x.shape == (1, MAXLEN) and x[0, 0] == 11 and x[0, -1] == 60


def test_bucket_lengths_are_the_multiples_of_the_width_up_to_maxlen():
    assert bucket_lengths(DataConfig(maxlen=500, bucket_width=128)) == [128, 256, 384, 500]
    assert bucket_lengths(DataConfig(maxlen=512, bucket_width=128)) == [128, 256, 384, 512]
    assert bucket_lengths(DataConfig(maxlen=40, bucket_width=128)) == [40]
    assert bucket_lengths(DataConfig()) == [128, 256, 384, 500]  # the null default for SimpleRNN: four shapes


def test_a_null_width_gives_two_lengths_where_every_training_loop_skips_the_padding_and_a_set_one_stays():
    assert bucket_width(DataConfig(), skips_padding=True) == 250  # lengths 250 and 500
    assert bucket_width(DataConfig(maxlen=801), skips_padding=True) == 401
    assert bucket_width(DataConfig(maxlen=801), skips_padding=True, longest=2000) == 401
    assert bucket_width(DataConfig(maxlen=100), skips_padding=True, longest=30) == 15  # short data: 15 and 30 used
    assert bucket_width(DataConfig(), skips_padding=False) == 128
    assert bucket_width(DataConfig(bucket_width=64), skips_padding=True) == 64
    assert bucket_lengths(DataConfig(maxlen=500, bucket_width=250)) == [250, 500]


def test_unbucketed_batches_are_the_book_recipe():
    source = reviews()
    for padding in ("pre", "post"):
        batches = Batches(source, 16, data(padding=padding), masked=False, seed=3)
        for index, x, _ in all_batches(batches):
            np.testing.assert_array_equal(x, source.take(index).padded(MAXLEN, padding, "pre"))


def test_dataset_feeds_keras_one_epoch_per_pass():
    batches = Batches(reviews(n=50), 16, data(), masked=True, seed=0)
    dataset = batches.dataset()
    first = [x.shape for x, _ in dataset]
    second = [x.shape for x, _ in dataset]
    assert len(first) == len(second) == 4 == int(dataset.cardinality())
    assert [tuple(s) for s in first] == [batches.batch(i)[0].shape for i in batches.indices(0)]
    assert [tuple(s) for s in second] == [batches.batch(i)[0].shape for i in batches.indices(1)]


def test_a_filled_short_batch_has_the_shape_of_a_full_one_and_weighs_only_its_reviews():
    source = reviews()  # 300 reviews: 18 batches of 16 and one of 12
    batches = Batches(source, 16, data(), masked=True, seed=3, filled=True)
    plain = Batches(source, 16, data(), masked=True, seed=3)
    for epoch in range(2):
        weights = np.zeros(len(source))
        for index, x, y, w in all_batches(batches, epoch):
            assert x.shape[0] == len(y) == len(w) == 16
            assert x.shape[1] == plain.batch(index)[0].shape[1]  # its own bucket, not maxlen
            rows = np.resize(index, 16)
            np.add.at(weights, rows, w)
            np.testing.assert_array_equal(w, np.arange(16) < len(index))
            np.testing.assert_array_equal(y, source.labels[rows])
        np.testing.assert_array_equal(weights, 1)  # every review weighs 1 once per epoch
    assert {len(index) for index in batches.indices(0)} == {16, 12}


def test_a_filled_short_batch_trains_as_the_short_batch_itself():
    """The loss averages over the sample weights: one SGD step on a short batch filled up with
    zero-weight copies moves the weights as the step on the short batch alone (a loss averaged over
    rows would take a step 4/16 as long), and scores the same accuracy."""
    from rnn_cli.config import TrainConfig
    from rnn_cli.model import compile_model

    source = reviews(n=4, seed=5)
    config = TrainConfig(optimizer="sgd", learning_rate=0.5, jit_compile=False)
    steps = []
    for filled in (False, True):
        keras.utils.set_random_seed(0)
        model = build_model(ModelConfig(embedding_dim=6, layers=(LayerConfig(type="lstm", units=5),)),
                            num_words=20, mask_zero=True)
        compile_model(model, config)
        batch = Batches(source, 16, data(), masked=True, filled=filled).batch(np.arange(4))
        before = model.get_weights()
        logs = model.train_on_batch(*batch, return_dict=True)
        steps.append(([a - b for a, b in zip(model.get_weights(), before)], logs))
    (plain, plain_logs), (filled, filled_logs) = steps
    assert max(np.abs(a).max() for a in plain) > 1e-3  # a real step
    for a, b in zip(plain, filled):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert filled_logs["accuracy"] == pytest.approx(plain_logs["accuracy"])
    assert filled_logs["loss"] == pytest.approx(plain_logs["loss"], rel=1e-5)


def test_a_batch_size_above_the_reviews_fills_to_the_reviews_not_to_the_batch_size():
    source = reviews(n=5)
    batches = Batches(source, 1_000_000, data(), masked=True, seed=1, filled=True)
    (index,) = batches.indices(0)
    x, y, weights = batches.batch(index)
    assert x.shape[0] == 5 and weights.tolist() == [1.0] * 5
