"""Figures as PNG: learning curves (loss and accuracy per epoch, best epoch marked), a review's score
word by word, and a test evaluation's confusion matrix, ROC and precision-recall curves and
reliability diagram."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none opened

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from rnn_cli import checkpoints, runs  # noqa: E402
from rnn_cli.checkpoints import best_row  # noqa: E402
from rnn_cli.errors import UserError  # noqa: E402
from rnn_cli.files import atomic_path, make_dir  # noqa: E402
from rnn_cli.metrics import (average_precision, confusion_matrix, curve_points, predicted_classes,  # noqa: E402
                             reliability, roc_auc, top_label)

FIGSIZE = (12, 4.5)  # inches: loss and accuracy side by side
DPI = 100  # so the PNG is about 1200 x 450 pixels (cropped or grown to what is drawn)
# A word's change of the score, coloured on one scale for every review (beyond it, the end colours): orange
# away from the traced class, blue towards it. page.html uses the same.
CHANGE_SCALE = 0.25
AWAY_COLOR, TOWARDS_COLOR = "#e66101", "#1f65b4"


def plot_runs(run_dirs: list[Path], out: Path | None = None) -> Path:
    """The curves of runs and seed groups (default: the newest run) on one figure; returns the PNG.

    `out` defaults to curves.png in the one folder given, or runs/compare.png for several.
    """
    run_dirs = run_dirs or [runs.newest_run(needs=runs.HISTORY_JSON)]
    folders = [member for path in run_dirs for member in runs.members(path)]
    curves = []
    for folder in folders:
        history = checkpoints.read_history(folder)
        if not history:
            raise UserError(f"{folder}: no finished epoch to plot (no {runs.HISTORY_JSON})")
        name = runs.config_name(folder)
        # Among several runs the folder tells them apart (unless it says no more than the name).
        label = f"{name} ({folder.name})" if len(folders) > 1 and folder.name != name else name
        curves.append((label, history))
    if out is None:
        out = run_dirs[0] / runs.CURVES if len(run_dirs) == 1 else runs.RUNS_ROOT / "compare.png"
    return plot_curves(curves, out)


def plot_curves(curves: list[tuple[str, list[dict]]], out: Path, title: str = "") -> Path:
    """Draw every (label, history) pair on one figure (`history_figure`) and write it to `out`."""
    figure = history_figure(curves, title)
    save_figure(figure, Path(out))
    return Path(out)


def history_figure(curves: list[tuple[str, list[dict]]], title: str = ""):
    """Every (label, history) pair on one matplotlib Figure, closed to pyplot (a notebook shows it once,
    when it is returned).

    Solid lines are validation, dashed lines training; a star marks each run's best validation
    accuracy, and a dot the validation loss of that epoch. The legend names each run once (its colour and
    best epoch) and the line styles once, below the plots when there are several runs, so it covers no curve.
    """
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI, layout="constrained")
    runs_shown = []
    for i, (label, history) in enumerate(curves):
        color = f"C{i % 10}"
        epochs = [row["epoch"] for row in history]
        for axis, key in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            axis.plot(epochs, [row[key] for row in history], color=color, linestyle="--", marker=".")
            axis.plot(epochs, [row[f"val_{key}"] for row in history], color=color, marker=".")
        best = best_row(history)
        said = f": best {best['val_accuracy']:.4f} (epoch {best['epoch']})" if best else ""
        runs_shown.append(Line2D([], [], color=color, linewidth=6, label=f"{label}{said}" if len(curves) > 1
                                 else f"best val acc {best['val_accuracy']:.4f} (epoch {best['epoch']})" if best
                                 else label))
        if best:
            accuracy_axis.scatter([best["epoch"]], [best["val_accuracy"]], marker="*", s=220, color=color,
                                  edgecolor="black", zorder=3)
            loss_axis.scatter([best["epoch"]], [best["val_loss"]], s=60, color=color, edgecolor="black", zorder=3)
    styles = [Line2D([], [], color="grey", linestyle="--", marker=".", label="training"),
              Line2D([], [], color="grey", marker=".", label="validation"),
              Line2D([], [], color="grey", marker="*", markersize=12, markeredgecolor="black", linestyle="none",
                     label="best validation accuracy")]
    for axis, name in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    if len(curves) == 1:
        loss_axis.legend(handles=styles, fontsize="small")
        accuracy_axis.legend(handles=runs_shown, fontsize="small", loc="lower right")
    else:
        figure.legend(handles=[*runs_shown, *styles], loc="outside lower center", fontsize="small",
                      ncol=min(3, len(runs_shown) + len(styles)))
    if title:
        figure.suptitle(title)
    plt.close(figure)
    return figure


def save_figure(figure, out: Path) -> None:
    """savefig through `atomic_path`, like every other file the tool writes; the canvas is cropped or grown to
    what is drawn (bbox_inches="tight"), so no label or legend is ever cut at its edge. Only a .png path is
    written: a figure never takes the name of a model, a history or a user's other file."""
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: figures are written as PNG; give a path ending .png")
    make_dir(out.parent)
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)


def change_colormap() -> LinearSegmentedColormap:
    """Orange (away from the traced class) through white to blue (towards it): safe for red-green colour
    blindness; the page (page.html) draws the same colours over the same scale."""
    return LinearSegmentedColormap.from_list("change", [AWAY_COLOR, "#ffffff", TOWARDS_COLOR])


def plot_explanation(explanation, out: Path, top: int = 5) -> Path:
    """The score after every word as a curve, over a strip coloured by how much each word moved it (one fixed
    scale for every review, with its colour bar); the biggest movers labelled."""
    e = explanation
    positions = list(range(len(e.words)))
    figure, (curve, strip) = plt.subplots(2, 1, figsize=FIGSIZE, dpi=DPI, sharex=True, layout="constrained",
                                          gridspec_kw={"height_ratios": [5, 1]})
    curve.plot(positions, e.scores, color="black", marker="." if len(positions) <= 120 else None, linewidth=1.2)
    curve.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    for i in e.movers(top):
        curve.annotate(e.words[i], (i, e.scores[i]), textcoords="offset points", xytext=(0, 8), ha="center",
                       fontsize="small", fontweight="bold", color=TOWARDS_COLOR if e.changes[i] > 0 else AWAY_COLOR)
    curve.set_ylim(-0.02, 1.08)
    curve.set_ylabel(f'P("{e.traced}")')
    curve.set_title(f"score after each word (final {e.probability:.4f}); colour: how much the word moved it",
                    fontsize="medium")
    curve.grid(alpha=0.3)
    image = strip.imshow(np.asarray(e.changes)[None, :], aspect="auto", cmap=change_colormap(),
                         vmin=-CHANGE_SCALE, vmax=CHANGE_SCALE, extent=(-0.5, len(positions) - 0.5, 0, 1))
    strip.set_yticks([])
    if len(positions) <= 60:  # short enough to name every word under the strip
        strip.set_xticks(positions, e.words, rotation=60, ha="right", fontsize="small")
    else:
        strip.set_xlabel("word position (0: start token)")
    bar = figure.colorbar(image, ax=[curve, strip], fraction=0.03, pad=0.01, extend="both")
    bar.set_label(f'change in P("{e.traced}")\n(the same scale for every review)', fontsize="small")
    save_figure(figure, Path(out))
    plt.close(figure)
    return Path(out)


def plot_evaluation(y: np.ndarray, p: np.ndarray, classes: tuple[str, ...], folder: Path,
                    threshold: float) -> list[Path]:
    """The confusion matrix, ROC and precision-recall curves (one-vs-rest for N classes) and the
    reliability diagram of a test evaluation, written into `folder`; `threshold`: two classes' cut."""
    return [confusion_figure(y, p, classes, folder / runs.CONFUSION, threshold),
            curves_figure(y, p, classes, folder / runs.ROC_PR),
            reliability_figure(y, p, folder / runs.RELIABILITY, threshold)]


def confusion_figure(y, p, classes, out: Path, threshold: float) -> Path:
    """A heatmap of the confusion matrix, each cell's count and its share of the actual class."""
    matrix = confusion_matrix(y, predicted_classes(p, threshold), len(classes))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.6 * len(classes), 12)
    figure, axis = plt.subplots(figsize=(size, size * 0.85), dpi=DPI, layout="constrained")
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, f"{count}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize="small",
                  color="white" if shares[i, j] > 0.6 else "black")
    axis.set_xticks(range(len(classes)), classes, rotation=45 if len(classes) > 4 else 0, ha="right"
                    if len(classes) > 4 else "center")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    axis.set_title(f"confusion matrix: {np.trace(matrix)} of {matrix.sum()} right", fontsize="medium")
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of the actual class")
    return _saved(figure, out)


def curves_figure(y, p, classes, out: Path) -> Path:
    """ROC and precision-recall curves: of the positive class for two, one-vs-rest for each of N."""
    figure, (roc, pr) = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI, layout="constrained")
    y = np.asarray(y, dtype=int)
    pairs = [(classes[1], y, p)] if p.ndim == 1 else [(name, (y == k).astype(int), p[:, k])
                                                      for k, name in enumerate(classes)]
    for i, (name, truth, scores) in enumerate(pairs):
        points, color = curve_points(truth, scores), f"C{i % 10}"
        roc.plot(points["fpr"], points["tpr"], color=color, label=f"{name} (AUC {roc_auc(truth, scores):.3f})")
        pr.plot(points["recall"], points["precision"], color=color, drawstyle="steps-post",
                label=f"{name} (AP {average_precision(truth, scores):.3f})")
        # A model that guesses has the class' share as its precision at every recall.
        pr.axhline(truth.mean(), color=color, linestyle=":", linewidth=1)
    pr.plot([], [], color="grey", linestyle=":", linewidth=1, label="chance: the class' share")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    for axis, (x, label) in ((roc, ("false positive rate", "true positive rate")),
                             (pr, ("recall", "precision"))):
        axis.set_xlabel(x)
        axis.set_ylabel(label)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    roc.set_title("ROC" + (" (one class against the rest)" if len(pairs) > 1 else ""), fontsize="medium")
    pr.set_title("precision-recall", fontsize="medium")
    return _saved(figure, out)


def reliability_figure(y, p, out: Path, threshold: float) -> Path:
    """How often the predicted class is right against how sure the model was, by confidence bin."""
    bins = reliability(y, p, threshold)
    figure, axis = plt.subplots(figsize=(6, 5), dpi=DPI, layout="constrained")
    edges = np.linspace(0, 1, len(bins["counts"]) + 1)
    counts = np.array(bins["counts"])
    filled = counts > 0
    bars = axis.bar(edges[:-1][filled], np.array(bins["accuracy"])[filled], width=edges[1] - edges[0],
                    align="edge", edgecolor="black", alpha=0.7, label="share right (n: reviews in the bin)")
    axis.bar_label(bars, labels=[f"n={n:,}" for n in counts[filled]], fontsize="x-small", padding=2)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    confidence, _ = top_label(y, p, threshold)
    axis.set_xlim(min(0.5, float(confidence.min(initial=0.5))) if p.ndim == 1 else 0, 1)
    axis.set_ylim(0, 1.08)
    axis.set_xlabel("probability of the predicted class")
    axis.set_ylabel("share of those reviews it got right")
    axis.set_title(f"reliability: expected calibration error {bins['expected_calibration_error']:.4f}",
                   fontsize="medium")
    axis.legend(fontsize="small", loc="upper left")
    axis.grid(alpha=0.3)
    return _saved(figure, out)


def _saved(figure, out: Path) -> Path:
    save_figure(figure, Path(out))
    plt.close(figure)
    return Path(out)
