"""rnn_cli.metrics: the test-set metrics, checked by hand."""

import numpy as np
import pytest

from rnn_cli.metrics import classification_metrics, roc_auc


def test_metrics_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.1, 0.2, 0.4, 0.7])
    m = classification_metrics(y, p, 0.5)
    assert m["confusion_matrix"] == {"true_negative": 3, "false_positive": 1,
                                     "false_negative": 1, "true_positive": 3}
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    # Positives outscore negatives in 14 of 16 pairs.
    assert m["roc_auc"] == pytest.approx(14 / 16)
    expected_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert m["loss"] == pytest.approx(expected_loss)


def test_auc_counts_ties_half_and_needs_both_classes():
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert roc_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.8, 0.2])) == pytest.approx(1.0)
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.9])) is None


def test_no_positive_predictions_do_not_divide_by_zero():
    m = classification_metrics(np.array([1, 0]), np.array([0.1, 0.2]), 0.5)
    assert m["precision"] == 0.0 and m["f1"] == 0.0 and m["accuracy"] == 0.5
