"""`rnn train` as a whole: the run folder and config (new, or resumed), one run in this process or a
seed group in a process per seed, and what an interruption leaves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rnn_cli import backends, checkpoints, files, loading, runs
from rnn_cli.memory import check_model_fits
from rnn_cli.config import TABLES, Config
from rnn_cli.data import check_source
from rnn_cli.errors import StorageError, UserError, require_extra
from rnn_cli.stopping import stop_signals
from rnn_cli.own_files import check_columns
from rnn_cli.vectors import check_vectors


@dataclass(frozen=True)
class Launch:
    config: Config
    run_dir: Path
    seeds: int | None  # a new seed group's size
    group: bool  # a seed group: trained, resumed and reported as a whole
    resume: bool


def new_launch(config: Config, run_dir: Path | None, seeds: int | None) -> Launch:
    """A new run (or seed group) of `config`, in `run_dir` if given and empty, else a fresh folder."""
    check_model_fits(config)
    backends.ready(config.train)
    if config.train.tensorboard:
        require_extra("tensorboard", "tensorboard")
    data = config.data
    for path in (data.path, data.test_path):
        if data.source != "keras" and path is not None:
            check_source(path, data.source)
            if data.source in TABLES:  # a missing column is found before TensorFlow loads
                check_columns(Path(path).expanduser(), data.source, data.text_column, data.label_column,
                              data.group_column if path == data.path else None)
    if config.model.embedding_file:
        check_vectors(config.model.embedding_file, config.model.embedding_dim)
    run_dir = runs.claim_run_dir(run_dir) if run_dir else runs.new_run_dir(config.name)
    return Launch(config, run_dir, seeds, group=seeds is not None, resume=False)


def resumed_launch(run_dir: Path | None, overrides: list[str]) -> Launch:
    """The run or seed group in `run_dir` (default: the newest), continued; `overrides`: --epochs."""
    run_dir, config, group = checkpoints.resume_target(run_dir, overrides)
    backends.ready(config.train, None if group else loading.recorded_backend(run_dir))  # a seed's: its process
    return Launch(config, run_dir, None, group=group, resume=True)


def train_launch(launch: Launch, device: str, echo: Callable[[str], None],
                 progress: bool | None) -> list[checkpoints.TrainResult]:
    """Train it; Ctrl-C and SIGTERM stop it resumably (KeyboardInterrupt). A new run that stops or
    fails before its first epoch is committed leaves no folder behind; the folder is this process'
    until it returns."""
    try:
        with stop_signals():
            from rnn_cli.seeds import headed, train_seeds  # here: it brings matplotlib, which bad input never needs

            echo = headed(echo, f"run folder: {launch.run_dir}")
            if launch.group:  # this process never loads TensorFlow: each seed trains in its own
                return train_seeds(launch.config, launch.run_dir, launch.seeds, resume=launch.resume,
                                   device=device, echo=echo, progress=progress)
            from rnn_cli.process_settings import configure_training, load_backend

            load_backend(launch.config.train, device, launch.run_dir)
            from rnn_cli.training import train

            configure_training(launch.config, device)
            resume = launch.resume and (launch.run_dir / runs.CHECKPOINT).exists()
            return [train(launch.config, launch.run_dir, device=device, resume=resume, echo=echo,
                          progress=progress)]
    except BaseException as err:
        done = finished_epochs(launch)
        if not launch.resume and done == 0:
            runs.unlock(launch.run_dir)
            runs.remove_run(launch.run_dir)
        elif isinstance(err, StorageError):  # the disk, not the run: once it is mended, go on
            raise StorageError(f"{err}; {done} finished epoch(s) kept; continue with "
                               f"`rnn train --resume --run {launch.run_dir}`") from None
        raise
    finally:
        runs.unlock(launch.run_dir)


def finished_epochs(launch: Launch) -> int | None:
    """Committed epochs in the run, or in all of a group's seeds; None when a history cannot be read."""
    try:
        return sum(len(checkpoints.read_history(folder)) for folder in runs.members(launch.run_dir))
    except UserError:
        return None


def interrupted_message(launch: Launch) -> str:
    """Where the run stopped and how to go on; in a seed group, the newest seed is the one stopped."""
    if not launch.run_dir.exists():
        return "\ninterrupted before the first epoch finished: nothing kept"
    stopped = runs.newest_run(launch.run_dir, needs=runs.RUN_RECORD) if launch.group else launch.run_dir
    done = len(checkpoints.read_history(stopped))
    return (f"\ninterrupted: {done} finished epoch(s) kept in {stopped}; continue with "
            f"`rnn train --resume --run {launch.run_dir}`")


def result_lines(launch: Launch, results: list[checkpoints.TrainResult]) -> list[str]:
    """One line per run trained, and the group's mean and spread."""
    lines = [f"test accuracy {r.metrics['accuracy']:.4f}  loss {r.metrics['loss']:.4f}  "
             f"(best epoch {r.best_epoch}, {len(r.history)} epoch(s), {r.device})  run: {r.run_dir}"
             for r in results]
    if launch.group:
        s = files.read_json(launch.run_dir / runs.SEEDS_SUMMARY)
        ensemble = s.get("ensemble_test_accuracy")
        together = f" (as one model, the mean of their probabilities: {ensemble:.4f})" if ensemble is not None else ""
        lines.append(f"{len(results)} seeds: test accuracy {s['test_accuracy']:.4f} ± {s['test_accuracy_std']:.4f}"
                     f"{together}, best val acc {s['best_val_accuracy']:.4f} ± {s['best_val_accuracy_std']:.4f}  "
                     f"group: {launch.run_dir}")
    return lines
