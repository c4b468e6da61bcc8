"""`rnn eval`: score a trained run, a seed group (the mean of its runs' probabilities) or a bare .keras model on
the test split and write eval.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnn_cli import loading, runs
from rnn_cli.config import Config, config_from_dict, load_config, to_dict
from rnn_cli.corpus import Vocabulary
from rnn_cli.data import load_data
from rnn_cli.errors import UserError
from rnn_cli.files import write_json
from rnn_cli.inference import predict_probabilities
from rnn_cli.metrics import score
from rnn_cli.model import class_count


@dataclass(frozen=True)
class Evaluation:
    metrics: dict
    labels: np.ndarray  # each test review's class
    probabilities: np.ndarray  # as `predict_probabilities` gives them
    classes: tuple[str, ...]
    folder: Path  # where eval.json and the figures belong: beside the model


def evaluate_run(run_dir: Path | None, model_file: Path | None, overrides: list[str]) -> Evaluation:
    """Score a trained model on the test split.

    Args:
        run_dir: a run folder (its config, vocabulary and model are used).
        model_file: a .keras file instead; the run around it is used when there is one.
        overrides: `--set` style strings for the data section (another path, a limit).

    Returns:
        The metrics, what they were computed from, and the folder they belong in.
    """
    if model_file is not None:
        folder = model_file.parent
        model = loading.load_keras(model_file)
        run_dir = folder if (folder / runs.CONFIG).exists() else None
    else:
        folder = run_dir
        model = loading.load_trained(run_dir)  # a seed group's: the mean of its runs' probabilities
        run_dir = loading.model_source(run_dir)
    if run_dir is not None:
        config = load_config(run_dir / runs.CONFIG, overrides)
        vocabulary = Vocabulary.load(run_dir / runs.VOCABULARY)
    else:
        # A bare model: the default data settings, sized to its embedding.
        if "embedding" not in [layer.name for layer in model.layers]:
            raise UserError(f"--model {model_file}: not a model rnn train made (it has no layer named embedding)")
        num_words = model.get_layer("embedding").input_dim
        config = config_from_dict(to_dict(Config()), [f"data.num_words={num_words}", *overrides],
                                  source="--model")
        vocabulary = None
    splits = load_data(config.data, vocabulary)
    classes = runs.read_classes(run_dir) if run_dir is not None else splits.classes
    if classes != splits.classes or len(classes) != class_count(model):
        raise UserError(f"{config.data.path or 'the test data'}: its classes ({', '.join(splits.classes)}) are not "
                        f"the model's ({', '.join(classes)}, {class_count(model)} in its head)")
    probabilities = predict_probabilities(model, splits.test, config.data)
    metrics = score(splits.test.labels, probabilities, classes)
    metrics["data"] = {"source": splits.source, "limit": config.data.limit}
    return Evaluation(metrics, splits.test.labels, probabilities, classes, folder)


def save_evaluation(result: Evaluation) -> list[Path]:
    """eval.json, the figures (confusion, ROC/PR, reliability) and, for a run or a seed group, its model
    card with these metrics, beside the model; the paths written."""
    from rnn_cli.card import write_card
    from rnn_cli.model import THRESHOLD
    from rnn_cli.plots import plot_evaluation

    write_json(result.folder / runs.EVAL, result.metrics)
    written = [result.folder / runs.EVAL, *plot_evaluation(result.labels, result.probabilities, result.classes,
                                                           result.folder, THRESHOLD)]
    if (result.folder / runs.CONFIG).exists() or runs.is_group(result.folder):  # its card takes these metrics
        written.append(write_card(result.folder))
    return written


def metrics_table(m: dict) -> str:
    """The metrics and confusion matrix as a small aligned table."""
    if "per_class" in m:
        return multiclass_table(m)
    cm = m["confusion_matrix"]
    auc = "n/a (one class only)" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
    rows = [("reviews", f"{m['reviews']}"), ("loss", f"{m['loss']:.4f}"),
            ("accuracy", f"{m['accuracy']:.4f}"), ("precision", f"{m['precision']:.4f}"),
            ("recall", f"{m['recall']:.4f}"), ("f1", f"{m['f1']:.4f}"), ("roc_auc", auc),
            ("ece", f"{m['expected_calibration_error']:.4f} (expected calibration error)")]
    lines = [f"{name:<10} {value}" for name, value in rows]
    lines += ["", "confusion   predicted neg  predicted pos",
              f"actual neg  {cm['true_negative']:>13}  {cm['false_positive']:>13}",
              f"actual pos  {cm['false_negative']:>13}  {cm['true_positive']:>13}"]
    return "\n".join(lines)


def multiclass_table(m: dict) -> str:
    """N-class metrics: the averages, a row per class, and the confusion matrix with class names."""
    auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
    rows = [("reviews", f"{m['reviews']}"), ("loss", f"{m['loss']:.4f}"), ("accuracy", f"{m['accuracy']:.4f}"),
            ("macro f1", f"{m['macro_f1']:.4f}"), ("weighted f1", f"{m['weighted_f1']:.4f}"),
            ("roc_auc", f"{auc} (one-vs-rest, macro)"),
            ("ece", f"{m['expected_calibration_error']:.4f} (expected calibration error)")]
    names = m["confusion_matrix"]["classes"]
    width = max(len(name) for name in [*names, "actual"]) + 2
    lines = [f"{name:<12} {value}" for name, value in rows]
    lines += ["", f"{'class':<{width}}precision  recall  f1      support"]
    lines += [f"{name:<{width}}{c['precision']:<11.4f}{c['recall']:<8.4f}{c['f1']:<8.4f}{c['support']}"
              for name, c in m["per_class"].items()]
    lines += ["", f"{'actual':<{width}}" + "".join(f"{name:>{width}}" for name in names) + "  (predicted)"]
    lines += [f"{name:<{width}}" + "".join(f"{count:>{width}}" for count in row)
              for name, row in zip(names, m["confusion_matrix"]["matrix"])]
    return "\n".join(lines)
