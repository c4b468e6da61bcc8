"""Learning curves as PNG: loss and accuracy per epoch, training and validation, best epoch marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none opened

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rnn_cli import runs  # noqa: E402
from rnn_cli.errors import UserError  # noqa: E402
from rnn_cli.files import atomic_path, make_dir  # noqa: E402
from rnn_cli.runs import best_row  # noqa: E402

FIGSIZE = (12, 4.5)  # inches: loss and accuracy side by side
DPI = 100  # so the PNG is 1200 x 450 pixels


def plot_runs(run_dirs: list[Path], out: Path | None = None) -> Path:
    """The curves of runs and seed groups (default: the newest run) on one figure; returns the PNG.

    `out` defaults to curves.png in the one folder given, or runs/compare.png for several.
    """
    run_dirs = run_dirs or [runs.newest_run(needs=runs.HISTORY_JSON)]
    folders = [member for path in run_dirs for member in runs.members(path)]
    curves = []
    for folder in folders:
        history = runs.read_history(folder)
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
    """Draw every (label, history) pair on one figure and write it to `out`.

    Solid lines are validation, dashed lines training; a star marks each run's best validation
    accuracy, and a dot the validation loss of that epoch.
    """
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    for i, (label, history) in enumerate(curves):
        color = f"C{i % 10}"
        prefix = f"{label} " if len(curves) > 1 else ""
        epochs = [row["epoch"] for row in history]
        for axis, key in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            axis.plot(epochs, [row[key] for row in history], color=color, linestyle="--", marker=".",
                      label=f"{prefix}training")
            axis.plot(epochs, [row[f"val_{key}"] for row in history], color=color, marker=".",
                      label=f"{prefix}validation")
        best = best_row(history)
        if best:
            accuracy_axis.scatter([best["epoch"]], [best["val_accuracy"]], marker="*", s=220, color=color,
                                  edgecolor="black", zorder=3,
                                  label=f"{prefix}best: {best['val_accuracy']:.4f} (epoch {best['epoch']})")
            loss_axis.scatter([best["epoch"]], [best["val_loss"]], s=60, color=color, edgecolor="black", zorder=3)
    for axis, name in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, Path(out))
    plt.close(figure)
    return Path(out)


def save_figure(figure, out: Path) -> None:
    """savefig through `atomic_path`, like every other file the tool writes."""
    make_dir(out.parent)
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)


def plot_explanation(explanation, out: Path, top: int = 5) -> Path:
    """The score after every word as a curve over a colour strip; the biggest movers labelled."""
    e = explanation
    positions = list(range(len(e.words)))
    figure, (curve, strip) = plt.subplots(2, 1, figsize=FIGSIZE, dpi=DPI, sharex=True,
                                          gridspec_kw={"height_ratios": [5, 1]})
    curve.plot(positions, e.scores, color="C0", marker="." if len(positions) <= 120 else None)
    curve.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    for i in e.movers(top):
        curve.annotate(e.words[i], (i, e.scores[i]), textcoords="offset points", xytext=(0, 8),
                       ha="center", fontsize="small", color="C2" if e.changes[i] > 0 else "C3")
    curve.set_ylim(-0.02, 1.08)
    curve.set_ylabel('P("positive")')
    curve.set_title(f"score after each word (final {e.probability:.4f})", fontsize="medium")
    curve.grid(alpha=0.3)
    strip.imshow(np.asarray(e.scores)[None, :], aspect="auto", cmap="RdYlGn", vmin=0.0, vmax=1.0,
                 extent=(-0.5, len(positions) - 0.5, 0, 1))
    strip.set_yticks([])
    if len(positions) <= 60:  # short enough to name every word under the strip
        strip.set_xticks(positions, e.words, rotation=60, ha="right", fontsize="small")
    else:
        strip.set_xlabel("word position (0: start token)")
    figure.tight_layout()
    save_figure(figure, Path(out))
    plt.close(figure)
    return Path(out)
