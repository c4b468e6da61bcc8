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


def test_multiclass_metrics_by_hand():
    from rnn_cli.metrics import multiclass_metrics

    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])
    m = multiclass_metrics(y, p, ("a", "b", "c"))
    assert m["confusion_matrix"] == {"classes": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 1]]}
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8),
                                   "support": 2}
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.8, 0.2, 0.8, 0.6, 0.7, 0.4])))


def test_calibration_error_is_zero_for_honest_probabilities_and_large_for_overconfident_ones():
    from rnn_cli.metrics import reliability

    y = np.array([1] * 7 + [0] * 3 + [0] * 7 + [1] * 3)
    honest = np.array([0.7] * 10 + [0.3] * 10)  # 70% right at 0.7 confidence
    assert reliability(y, honest, 0.5)["expected_calibration_error"] == pytest.approx(0.0)
    sure = np.array([0.99] * 10 + [0.01] * 10)
    assert reliability(y, sure, 0.5)["expected_calibration_error"] == pytest.approx(0.29)


def test_curve_points_run_from_the_corner_to_every_positive_found():
    from rnn_cli.metrics import curve_points

    points = curve_points(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    assert points["fpr"].tolist() == [0, 0, 0.5, 0.5, 1] and points["tpr"].tolist() == [0, 0.5, 0.5, 1, 1]
    assert points["precision"].tolist() == [1, 0.5, 2 / 3, 0.5]
