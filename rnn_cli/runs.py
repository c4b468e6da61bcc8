"""Run folders and the files in them: names, finding, claiming, reading back. One writer per file;
every write is atomic (`rnn_cli.files`)."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

from rnn_cli.config import Config, TrainConfig, load_config, read_yaml
from rnn_cli.errors import ConfigError, UserError
from rnn_cli.files import read_json, write_atomic, write_json

RUNS_ROOT = Path("runs")
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")

# The files of a run folder, by role.
CONFIG = "config.yaml"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
MODEL = "model.keras"
CHECKPOINT = "checkpoint.keras"  # the last finished epoch, optimizer state included
BEST_WEIGHTS = "best.weights.h5"  # the epoch with the best val_accuracy so far
VOCABULARY = "vocab.json"
SUMMARY = "summary.txt"
RUN_RECORD = "run.json"
METRICS = "metrics.json"
EVAL = "eval.json"
CURVES = "curves.png"  # learning curves (rnn plot, and rnn train at the end)
EXPLAIN = "explain.png"  # the score word by word of the last `rnn explain`
SEEDS_SUMMARY = "seeds.json"  # in the folder of an `rnn train --seeds N` group


def write_history(run_dir: Path, rows: list[dict]) -> None:
    """history.csv and history.json, one row per finished epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(run_dir / HISTORY_CSV, buffer.getvalue())
    write_json(run_dir / HISTORY_JSON, rows)


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / HISTORY_JSON
    return read_json(path) if path.exists() else []


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
    metrics: dict  # test-set metrics of the saved model
    device: str


def read_result(run_dir: Path) -> TrainResult:
    """A finished run's result, read back from its folder."""
    history = read_history(run_dir)
    best = best_row(history)
    return TrainResult(run_dir, history, best["epoch"] if best else None, read_json(run_dir / METRICS),
                       read_json(run_dir / RUN_RECORD).get("device", "?"))


def find_runs(root: Path = RUNS_ROOT, needs: str = RUN_RECORD) -> list[Path]:
    """Run folders under `root` that have the file `needs`, the runs of seed groups included, oldest first."""
    # Two levels: runs/<run>/ and runs/<group>/seed-N/ (glob follows linked folders, rglob does not).
    found = [p for pattern in ("*/", "*/*/") for p in root.glob(pattern) if (p / needs).exists()]
    return sorted(found, key=lambda p: ((p / CONFIG).stat().st_mtime if (p / CONFIG).exists() else 0, str(p)))


def members(path: Path) -> list[Path]:
    """The runs of a seed group (a folder with seeds.json), or [path] for a single run."""
    return find_runs(path) if (path / SEEDS_SUMMARY).exists() else [path]


def new_run_dir(name: str, root: Path = RUNS_ROOT) -> Path:
    """A fresh `root/<name>-<timestamp>` folder; a suffix keeps it from reusing one that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        path = root / (f"{name}-{stamp}" if attempt == 1 else f"{name}-{stamp}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"{root}: cannot find a free run folder name for {name}-{stamp}")


def claim_run_dir(path: Path) -> Path:
    """Use `path` for a new run; refuse one that already holds files."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"--run-dir {path}: already exists and is not empty; pick a new folder, "
                        f"or add --resume to continue the run in it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def newest_run(root: Path = RUNS_ROOT, needs: str = CONFIG) -> Path:
    """The most recently started run under `root` (seed groups included) that has the file `needs`."""
    runs = find_runs(root, needs)
    if not runs:
        raise UserError(f"no run with {needs} under {root}/; train one with `rnn train`, "
                        f"or name one with --run DIR")
    return max(runs, key=lambda p: ((p / CONFIG).stat().st_mtime, p.name))


class RunRecord:
    """run.json: what ran, where, on what data, how long, and how it ended; updated field by field.
    A seed group's seeds.json likewise (`file`)."""

    def __init__(self, run_dir: Path, file: str = RUN_RECORD):
        self.path = run_dir / file
        self.fields: dict = read_json(self.path) if self.path.exists() else {}

    def update(self, **fields) -> None:
        self.fields.update(fields)
        write_json(self.path, self.fields)


def read_run_config(run_dir: Path) -> dict:
    """The run's config.yaml as a mapping; {} when it is missing or unreadable."""
    try:
        return read_yaml(run_dir / CONFIG)
    except ConfigError:
        return {}


def config_name(run_dir: Path, config: dict | None = None) -> str:
    """The config's name, else the folder's; `config`: its config.yaml when already read."""
    return (read_run_config(run_dir) if config is None else config).get("name", run_dir.name)


def load_trained(run_dir: Path):
    """The run's model.keras, or an error that says why a run has none."""
    path = run_dir / MODEL
    if not path.exists():
        hint = (f"it has a checkpoint: finish it with `rnn train --resume --run-dir {run_dir}`"
                if (run_dir / CHECKPOINT).exists() else "train one with `rnn train`")
        raise UserError(f"{run_dir}: no {MODEL} in this run; {hint}")
    import keras  # here, not at the top: the seed group's process reads run folders without Keras

    return keras.saving.load_model(path)


def resume_target(run_dir: Path | None, overrides: list[str]) -> tuple[Path, Config, bool]:
    """What `rnn train --resume` continues: the folder (default: the newest with a checkpoint), its
    config with `overrides` (--epochs) applied, and whether it is a seed group."""
    run_dir = run_dir or newest_run(needs=CHECKPOINT)
    if (run_dir / SEEDS_SUMMARY).exists():
        # A seed group: its members share the config but the seed; the first was started first.
        first = read_json(run_dir / SEEDS_SUMMARY)["seeds"][0]
        return run_dir, load_config(run_dir / f"seed-{first}" / CONFIG, overrides), True
    config = load_config(run_dir / CONFIG, overrides)
    if not (run_dir / CHECKPOINT).exists():
        raise UserError(f"{run_dir}: nothing to resume (no finished epoch yet); start it anew")
    return run_dir, config, False


def remove_run(run_dir: Path) -> None:
    """Delete a run folder that holds no finished epoch (bad input found before training)."""
    for path in sorted(run_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    run_dir.rmdir()
