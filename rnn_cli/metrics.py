"""Test-set metrics from labels and probabilities, pure NumPy: loss, accuracy, precision, recall, F1,
ROC AUC, confusion matrix."""

from __future__ import annotations

import numpy as np


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
        "accuracy": (tp + tn) / len(y),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "roc_auc": roc_auc(y, p),
        "confusion_matrix": {"true_negative": tn, "false_positive": fp,
                             "false_negative": fn, "true_positive": tp},
    }


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
