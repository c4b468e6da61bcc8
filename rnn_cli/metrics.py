"""Test-set metrics from labels and probabilities, pure NumPy: loss, accuracy, precision, recall, F1,
ROC AUC, confusion matrix; for two classes and for N (per class, macro and weighted averages)."""

from __future__ import annotations

import numpy as np

from rnn_cli.errors import UserError

THRESHOLD = 0.5  # the head's probability at or above which a review is called positive


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Binary classification metrics of probabilities `p` against 0/1 labels `y`; a probability at
    or above `threshold` is a positive prediction."""
    y = np.asarray(y).astype(np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    predicted = (p >= threshold).astype(np.int64)
    tp = int(np.sum((predicted == 1) & (y == 1)))
    tn = int(np.sum((predicted == 0) & (y == 0)))
    fp = int(np.sum((predicted == 1) & (y == 0)))
    fn = int(np.sum((predicted == 0) & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    eps = 1e-7  # Keras clips probabilities the same way in binary_crossentropy
    clipped = np.clip(p, eps, 1 - eps)
    return {
        "reviews": int(len(y)),
        "loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "macro_f1": macro_f1(tp, tn, fp, fn),
        "accuracy": (tp + tn) / len(y),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "roc_auc": roc_auc(y, p),
        "expected_calibration_error": reliability(y, p, threshold)["expected_calibration_error"],
        "confusion_matrix": {"true_negative": tn, "false_positive": fp,
                             "false_negative": fn, "true_positive": tp},
    }


def macro_f1(tp: int, tn: int, fp: int, fn: int) -> float:
    """The mean of both classes' F1 (each class in turn the positive one)."""
    def f1(hit, false_alarm, miss):
        return 2 * hit / (2 * hit + false_alarm + miss) if hit else 0.0
    return (f1(tp, fp, fn) + f1(tn, fn, fp)) / 2


def roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve: the chance a random positive outscores a random negative.

    Computed from ranks (Mann-Whitney U), ties counted half; None when a class is missing.
    """
    positives, negatives = int(np.sum(y == 1)), int(np.sum(y == 0))
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sorted_p = p[order]
    # Average ranks over runs of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    ends = np.r_[starts[1:], len(p)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    u = ranks[y == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def multiclass_metrics(y: np.ndarray, p: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Metrics of (n, N) class probabilities `p` against class indices `y`: accuracy, cross-entropy,
    per-class precision / recall / F1, their macro and weighted averages, one-vs-rest macro ROC AUC,
    and the confusion matrix (rows: actual, columns: predicted)."""
    y = np.asarray(y).astype(np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64)
    count = len(classes)
    matrix = confusion_matrix(y, predicted_classes(p), count)
    per_class = {}
    for k, name in enumerate(classes):
        tp, support, called = matrix[k, k], matrix[k].sum(), matrix[:, k].sum()
        precision = tp / called if called else 0.0
        recall = tp / support if support else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "support": int(support),
                           "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0}
    f1 = np.array([per_class[name]["f1"] for name in classes])
    support = matrix.sum(axis=1)
    aucs = [roc_auc((y == k).astype(np.int64), p[:, k]) for k in range(count)]
    aucs = [auc for auc in aucs if auc is not None]
    return {
        "reviews": int(len(y)),
        "loss": float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0)))),
        "accuracy": float(np.trace(matrix) / len(y)),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / support.sum()),
        "roc_auc": float(np.mean(aucs)) if aucs else None,
        "expected_calibration_error": reliability(y, p)["expected_calibration_error"],
        "per_class": per_class,
        "confusion_matrix": {"classes": list(classes), "matrix": matrix.tolist()},
    }


CALIBRATION_BINS = 10  # equal-width bins of the predicted class's probability


def predicted_classes(p: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The class each review is given: for (n,) probabilities of the second of two classes, 1 at or
    above `threshold`; for (n, N), the likeliest."""
    p = np.asarray(p)
    return (p >= threshold).astype(np.int64) if p.ndim == 1 else p.argmax(axis=1)


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, count: int) -> np.ndarray:
    """(count, count) review counts; rows: the actual class, columns: the predicted one."""
    matrix = np.zeros((count, count), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y, dtype=np.int64).reshape(-1), predicted), 1)
    return matrix


def top_label(y: np.ndarray, p: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The probability of the class each review is given (two classes: `p` or 1 - `p`), and whether
    that class is right."""
    y = np.asarray(y).astype(np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64)
    predicted = predicted_classes(p, threshold)
    confidence = np.where(predicted == 1, p, 1 - p) if p.ndim == 1 else p.max(axis=1)
    return confidence, predicted == y


def reliability(y: np.ndarray, p: np.ndarray, threshold: float | None = None) -> dict:
    """Per confidence bin: reviews, mean confidence, accuracy; and the expected calibration error
    (the bins' |accuracy - confidence|, weighted by their reviews). `threshold`: for two classes."""
    confidence, right = top_label(y, p, threshold)
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, confidence, CALIBRATION_BINS) / counts
        accuracy = np.bincount(bins, right.astype(np.float64), CALIBRATION_BINS) / counts
    gaps = np.where(counts > 0, np.abs(accuracy - mean_confidence), 0.0)
    return {"counts": counts.tolist(), "confidence": np.nan_to_num(mean_confidence).tolist(),
            "accuracy": np.nan_to_num(accuracy).tolist(),
            "expected_calibration_error": float((gaps * counts).sum() / max(counts.sum(), 1))}


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """The area under the precision-recall steps: precision at each score, weighted by the recall it adds
    (as scikit-learn's average_precision_score)."""
    points = curve_points(y, scores)
    return float(np.sum(np.diff(points["recall"], prepend=0.0) * points["precision"]))


def curve_points(y: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """ROC (false and true positive rates) and precision-recall points of `scores` for 0/1 labels `y`,
    one per distinct score, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    y, scores = np.asarray(y)[order], np.asarray(scores)[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the end of each run of equal scores
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    positives, negatives = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    return {"fpr": np.r_[0, fp / negatives], "tpr": np.r_[0, tp / positives],
            "recall": tp / positives, "precision": tp / np.maximum(tp + fp, 1)}


def score(labels: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]) -> dict:
    """The metrics of `predict_probabilities`' output: two classes' or N's; a model whose outputs are NaN
    (its weights were lost to a diverging training) is one line."""
    if not np.isfinite(probabilities).all():
        raise UserError("the model's outputs are NaN: its training diverged (its weights are not numbers); "
                        "train it again with a lower train.learning_rate")
    if probabilities.ndim == 1:
        return classification_metrics(labels, probabilities, THRESHOLD)
    return multiclass_metrics(labels, probabilities, classes)
