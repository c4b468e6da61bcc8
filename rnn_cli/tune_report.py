"""`rnn tune --report`: a study's trials as `rnn compare`'s rows (a column per tuned key), each key's
importance (fANOVA), and Optuna's figures of the search, saved as every figure is (`plots.save_figure`)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable

from rnn_cli import runs
from rnn_cli.compare import aligned, cells, compare, readable
from rnn_cli.errors import UserError
from rnn_cli.study import Study, optuna_study

HISTORY_PNG = "optimization_history.png"
SLICES_PNG = "val_accuracy_by_key.png"


def report(study: Study, echo: Callable[[str], None] = print) -> list[Path]:
    """The trials as `rnn compare`'s table (the tuned keys as its settings column), each key's
    importance, and PNGs of the optimisation history and of validation accuracy against each key."""
    import optuna
    from optuna.trial import TrialState

    if study.new:
        raise UserError("--report shows a study that exists: give --study NAME (and its --storage)")
    search = optuna_study(study, create=False)
    trials = search.get_trials(deepcopy=False)
    # Trials run on other machines (a shared --storage) have their folders there.
    folders = [study.folder / t.user_attrs["folder"] for t in trials if "folder" in t.user_attrs]
    folders = [f for f in folders if (f / runs.RUN_RECORD).exists() or (f / runs.SEEDS_SUMMARY).exists()]
    echo(f"study {study.name}: {len(trials)} trials, " + ", ".join(
        f"{sum(t.state == state for t in trials)} {state.name.lower()}" for state in TrialState
        if any(t.state == state for t in trials)))
    echo(trial_table(trials, study))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    written = []
    if len(complete) >= 2 and len(study.space) >= 1:
        importances = optuna.importance.get_param_importances(search)
        echo("")
        echo("importance of each key for val_accuracy (fANOVA):")
        for key, share in importances.items():
            echo(f"  {share:.3f}  {key}")
        written = plot_study(search, study)
    elif complete:
        echo("importances and figures need two finished trials or more")
    if complete:
        best = search.best_trial
        echo(f"best: trial {best.number}, val_accuracy {best.value:.4f}, {study.folder / best.user_attrs['folder']}")
    for path in written:
        echo(f"written: {path}")
    return written


def trial_table(trials, study: Study) -> str:
    """A row per trial: its state, score and values (a column per tuned key), and `rnn compare`'s
    figures of its folder (epochs, best epoch, seconds per epoch, minutes) where it is on this machine."""
    rows = {}
    for t in trials:
        folder = study.folder / t.user_attrs.get("folder", "-")
        if (folder / runs.RUN_RECORD).exists() or (folder / runs.SEEDS_SUMMARY).exists():
            rows[t.number] = cells(compare([folder])[0])
    keys = [param.key for param in study.space]
    head = ["trial", "state", "val acc", *keys, "epochs", "best epoch", "s/epoch", "train min", "run"]
    table = [head]
    for t in trials:
        row = rows.get(t.number, {})
        values = [format(t.params[key], ".4g") if isinstance(t.params.get(key), float) else str(t.params.get(key, "-"))
                  for key in keys]
        table.append([str(t.number), t.state.name.lower(), "-" if t.value is None else f"{t.value:.4f}", *values,
                      *(row.get(key, "-") for key in ("epochs", "best_epoch", "seconds_per_epoch", "train_minutes",
                                                       "path"))])
    return aligned(table)


def plot_study(search, study: Study) -> list[Path]:
    """Optuna's optimisation history and slice plots, as PNGs in the study folder."""
    from optuna.visualization import matplotlib as optuna_plots

    from rnn_cli.plots import plt, save_figure

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, draw in ((HISTORY_PNG, optuna_plots.plot_optimization_history),
                           (SLICES_PNG, optuna_plots.plot_slice)):
            axes = draw(search, target_name="val_accuracy")
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.set_size_inches(max(6.0, 4.0 * math.ceil(len(study.space) if name == SLICES_PNG else 1.5)), 4.5)
            readable_trials(figure, by_number=name == HISTORY_PNG)
            path = study.folder / name
            save_figure(figure, path)
            plt.close(figure)
            written.append(path)
    return written


def readable_trials(figure, by_number: bool) -> None:
    """Optuna's figures as a person reads them: trial numbers as whole numbers (an axis of trials, the colour
    bar of trial order), each point outlined so the first trials' pale colours stay visible, and room at the
    ends so a point at the first or last trial is not half hidden by the frame."""
    from matplotlib.collections import PathCollection
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    for axis in figure.axes:
        if axis.get_label() == "<colorbar>":
            axis.yaxis.set_major_locator(MaxNLocator(integer=True))
            continue
        if by_number:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axis.get_xscale() == "log":  # a learning rate's axis: 1, 2 and 5 of each decade, written 2.0e-3
            axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: readable(value)))
            axis.xaxis.set_minor_formatter(NullFormatter())
        axis.margins(x=0.06, y=0.08)
        for points in axis.collections:
            if isinstance(points, PathCollection):
                points.set_edgecolor("black")
                points.set_linewidth(0.6)
                points.set_sizes([40])
