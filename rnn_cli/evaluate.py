"""Test-set metrics of a trained model: loss, accuracy, precision, recall, F1, ROC AUC, confusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np

THRESHOLD = 0.5  # probability at or above which a review is called positive


def evaluate_model(model, reviews, data, batch_size: int | None = None, callbacks=()) -> dict:
    """Predict every review, batched as the model was trained, and score with `classification_metrics`.

    `batch_size` (default: the inference batch size) and `callbacks` as in `predict_probabilities`.
    """
    from rnn_cli.batches import INFERENCE_BATCH_SIZE, predict_probabilities

    probabilities = predict_probabilities(model, reviews, data, batch_size or INFERENCE_BATCH_SIZE, callbacks)
    return classification_metrics(reviews.labels, probabilities)


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """Binary classification metrics of probabilities `p` against 0/1 labels `y`."""
    y = np.asarray(y).astype(np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    predicted = (p >= THRESHOLD).astype(np.int64)
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


def evaluate_run(run_dir: Path | None, model_file: Path | None, overrides: list[str]) -> tuple[dict, Path]:
    """Score a trained model on the test split; write eval.json beside it.

    Args:
        run_dir: a run folder (its config, vocabulary and model are used).
        model_file: a .keras file instead; the run around it is used when there is one.
        overrides: `--set` style strings for the data section (another path, a limit).

    Returns:
        The metrics and the eval.json written.
    """
    import keras

    from rnn_cli import runs
    from rnn_cli.config import Config, config_from_dict, load_config, to_dict
    from rnn_cli.data import Vocabulary, load_imdb
    from rnn_cli.predict import load_trained

    if model_file is not None:
        folder = model_file.parent
        model = keras.saving.load_model(model_file)
        run_dir = folder if (folder / runs.CONFIG).exists() else None
    else:
        folder = run_dir
        model = load_trained(run_dir)
    if run_dir is not None:
        config = load_config(run_dir / runs.CONFIG, overrides)
        vocabulary = Vocabulary.load(run_dir / runs.VOCABULARY)
    else:
        # A bare model: the default data settings, sized to its embedding.
        num_words = model.get_layer("embedding").input_dim
        config = config_from_dict(to_dict(Config()), [f"data.num_words={num_words}", *overrides],
                                  source="--model")
        vocabulary = None
    splits = load_imdb(config.data, vocabulary)
    metrics = evaluate_model(model, splits.test, config.data)
    metrics["data"] = {"source": splits.source, "limit": config.data.limit}
    out = folder / runs.EVAL
    runs.write_json(out, metrics)
    return metrics, out
