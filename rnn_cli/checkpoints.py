"""A run's finished epochs on disk: the history rows, each epoch's checkpoint committed with its row,
recovery after a crash at any point, the best epoch, early stopping's count, and what --resume
continues. Every write is atomic (`rnn_cli.files`)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from rnn_cli.config import Config, TrainConfig, load_config
from rnn_cli.errors import UserError
from rnn_cli.files import read_json, replace, write_atomic, write_json
from rnn_cli.runs import (BEST_WEIGHTS, CHECKPOINT, CONFIG, HISTORY_CSV, HISTORY_JSON, METRICS, RUN_RECORD,
                          SEEDS_SUMMARY, damaged, lock, newest_run, read_mapping, seed_folders, unlock)

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
# An epoch's checkpoint and best weights are written under these names first, and take their own
# names only once the history names the epoch (`commit_epoch`).
PENDING = {CHECKPOINT: re.compile(r"\.checkpoint-(\d+)\.keras"), BEST_WEIGHTS: re.compile(r"\.best-(\d+)\.weights\.h5")}


def write_history(run_dir: Path, rows: list[dict]) -> None:
    """history.csv and history.json, one row per finished epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(run_dir / HISTORY_CSV, buffer.getvalue())
    write_json(run_dir / HISTORY_JSON, rows)


def read_history(run_dir: Path) -> list[dict]:
    """The finished epochs, checked: a row per epoch, numbered from 1, every column a number."""
    path = run_dir / HISTORY_JSON
    if not path.exists():
        return []
    history = read_json(path)
    numeric = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
    if not isinstance(history, list) or not all(
            isinstance(row, dict) and all(numeric(row.get(key)) for key in HISTORY_COLUMNS) and row["epoch"] == i
            for i, row in enumerate(history, start=1)):
        raise damaged(path, f"expected one row per epoch with {', '.join(HISTORY_COLUMNS)}")
    return history


def commit_epoch(run_dir: Path, history: list[dict], save_checkpoint, save_best=None) -> None:
    """Write a finished epoch as one step: its checkpoint (and best weights) under pending names, then
    the history, which commits the epoch, then the pending files under their own names. After a crash
    at any point `recover` brings the folder back to the last committed epoch."""
    epoch = len(history)
    pending = {CHECKPOINT: run_dir / f".checkpoint-{epoch}.keras"}
    if save_best is not None:
        pending[BEST_WEIGHTS] = run_dir / f".best-{epoch}.weights.h5"
    try:
        save_checkpoint(pending[CHECKPOINT])
        if save_best is not None:
            save_best(pending[BEST_WEIGHTS])
        write_history(run_dir, history)
    except BaseException:
        if len(read_history(run_dir)) < epoch:  # not committed: no trace of the epoch stays
            for path in pending.values():
                path.unlink(missing_ok=True)
        raise
    for name, path in pending.items():
        replace(path, run_dir / name)


def recover(run_dir: Path) -> list[dict]:
    """The committed history of a run stopped at any point; a committed epoch's pending files take
    their names, an uncommitted epoch's are removed."""
    history = read_history(run_dir)
    for name, pattern in PENDING.items():
        for path in sorted(run_dir.iterdir()):
            match = pattern.fullmatch(path.name)
            if match and int(match[1]) == len(history):
                replace(path, run_dir / name)
            elif match:
                path.unlink()
    csv_path = run_dir / HISTORY_CSV
    if history and csv_path.exists() and len(csv_path.read_text(encoding="utf-8").splitlines()) != len(history) + 1:
        write_history(run_dir, history)  # the CSV is written just before the JSON: it may lag
    return history


def best_row(history: list[dict]) -> dict | None:
    """The epoch with the best val_accuracy; ties keep the earlier one, as Keras' EarlyStopping does."""
    if not history:
        return None
    return max(history, key=lambda row: row["val_accuracy"])  # max keeps the first of equals


def epochs_left(history: list[dict], config: TrainConfig) -> bool:
    """Whether a run with `history` trains on: epochs to go and early stopping's patience not spent."""
    return len(history) < config.epochs and not patience_exhausted(history, config)


def patience_exhausted(history: list[dict], config: TrainConfig) -> bool:
    """Whether `history` has gone early_stopping.patience epochs without a better val_accuracy."""
    patience = config.early_stopping.patience
    best = best_row(history)
    return patience is not None and best is not None and len(history) - best["epoch"] >= patience


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    history: list[dict]
    best_epoch: int | None  # 1-based epoch with the best val_accuracy
    metrics: dict  # test-set metrics of the saved model; {} when the test split was not scored
    device: str


def read_result(run_dir: Path) -> TrainResult:
    """A finished run's result, read back from its folder."""
    history = read_history(run_dir)
    best = best_row(history)
    # A run trained without scoring the test split (an `rnn tune` trial) has no metrics.json.
    metrics = read_mapping(run_dir / METRICS, {"accuracy": float, "loss": float}) if (run_dir / METRICS).exists() else {}
    return TrainResult(run_dir, history, best["epoch"] if best else None, metrics,
                       read_mapping(run_dir / RUN_RECORD).get("device", "?"))


def resume_target(run_dir: Path | None, overrides: list[str]) -> tuple[Path, Config, bool]:
    """What `rnn train --resume` continues, locked for this process: the folder (default: the newest
    run), its config with `overrides` (--epochs) applied, and whether it is a seed group. A run with
    no finished epoch starts over in its folder."""
    run_dir = run_dir or newest_run(needs=CHECKPOINT)
    if not run_dir.is_dir():
        raise UserError(f"--run {run_dir}: no such folder")
    lock(run_dir)  # first: a folder another process is still setting up is theirs
    try:
        group = (run_dir / SEEDS_SUMMARY).exists()
        if group:
            # A seed group: its members share the config but the seed; the first was started first.
            members = seed_folders(run_dir)
        elif (run_dir / CONFIG).exists():
            members = [run_dir]
        else:
            raise UserError(f"{run_dir}: not a run folder (no {CONFIG}) nor a seed group (no {SEEDS_SUMMARY})")
        before = load_config(members[0] / CONFIG)
        config = load_config(members[0] / CONFIG, overrides) if overrides else before
        for member in members:
            check_epochs_change(before.train, config.train, len(recover(member)) if member.exists() else 0)
    except BaseException:
        unlock(run_dir)
        raise
    return run_dir, config, group


def check_epochs_change(before: TrainConfig, after: TrainConfig, finished: int) -> None:
    """Refuse an --epochs on resume that cannot mean what the user wants."""
    if after.epochs == before.epochs:
        return
    if after.epochs < finished:
        raise UserError(f"--epochs {after.epochs}: the run has {finished} finished epoch(s) already; "
                        f"--epochs is the total, so give {finished + 1} or more to train on")
    if before.schedule == "cosine":
        raise UserError(f"--epochs {after.epochs}: train.schedule cosine decays the rate to 0 over the run's "
                        f"{before.epochs} epochs, so it cannot be extended or cut; start a new run with "
                        f"--epochs {after.epochs}")
