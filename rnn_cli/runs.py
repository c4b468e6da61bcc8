"""Run folders: the names of their files, finding, claiming and locking a folder, run.json, reading a
run's config and classes back, seed groups' and studies' members. A run's epochs are in
`rnn_cli.checkpoints`, loading its model in `rnn_cli.loading`. One writer per file; every write is
atomic (`rnn_cli.files`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from rnn_cli.config import read_yaml
from rnn_cli.corpus import BINARY
from rnn_cli.errors import ConfigError, UserError
from rnn_cli.files import make_dir, read_json, storage_error, write_json

RUNS_ROOT = Path("runs")

# The files of a run folder, by role.
CONFIG = "config.yaml"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
MODEL = "model.keras"
CHECKPOINT = "checkpoint.keras"  # the last finished epoch, optimizer state included
BEST_WEIGHTS = "best.weights.h5"  # the epoch with the best val_accuracy so far
VOCABULARY = "vocab.json"
CLASSES = "classes.json"  # the class names in the model's order (a two-class head's output: the second's)
SPLIT = "split.json"  # the file lines of the rows held out as the test set, when they came from one file
SUMMARY = "summary.txt"
RUN_RECORD = "run.json"
METRICS = "metrics.json"
EVAL = "eval.json"
CURVES = "curves.png"  # learning curves (rnn plot, and rnn train at the end)
EXPLAIN = "explain.png"  # the score word by word of the last `rnn explain`
CONFUSION = "confusion.png"  # `rnn eval`'s figures: the confusion matrix,
ROC_PR = "roc_pr.png"  # ROC and precision-recall curves,
RELIABILITY = "reliability.png"  # and the reliability diagram
SEEDS_SUMMARY = "seeds.json"  # in the folder of an `rnn train --seeds N` group
STUDY = "study.json"  # in the folder of an `rnn tune` study: its base config and search space
TENSORBOARD = "tensorboard"  # with train.tensorboard: the event files TensorBoard reads
LOCK = ".lock"  # held by the process training in the folder; names its process id


def read_mapping(path: Path, needs: dict[str, type] | None = None) -> dict:
    """A JSON object written by rnn train (run.json, seeds.json, metrics.json), with the keys `needs`
    of the types given."""
    payload = read_json(path)
    needs = needs or {}
    if not isinstance(payload, dict) or not all(isinstance(payload.get(key), kind) for key, kind in needs.items()):
        wanted = f" with {', '.join(needs)}" if needs else ""
        raise damaged(path, f"expected a JSON object{wanted}")
    return payload


def damaged(path: Path, what: str) -> UserError:
    """One line for a run file that is there but cannot be used."""
    return UserError(f"{path}: damaged or not written by rnn train ({what}); restore it, or train the run again")


def find_runs(root: Path = RUNS_ROOT, needs: str = RUN_RECORD) -> list[Path]:
    """Run folders under `root` that have the file `needs`, the runs of seed groups included, oldest first."""
    # Two levels: runs/<run>/ and runs/<group>/seed-N/ (glob follows linked folders, rglob does not).
    found = [p for pattern in ("*/", "*/*/") for p in root.glob(pattern) if (p / needs).exists()]
    return sorted(found, key=lambda p: ((p / CONFIG).stat().st_mtime if (p / CONFIG).exists() else 0, str(p)))


def is_run_folder(path: Path) -> bool:
    """Whether `path` holds a run, a seed group or a study (files an export or a figure must never replace)."""
    return any((path / name).exists() for name in (RUN_RECORD, SEEDS_SUMMARY, STUDY, MODEL, HISTORY_JSON))


def members(path: Path) -> list[Path]:
    """The runs of a seed group (a folder with seeds.json) or of a study (study.json: its trials,
    seed groups' runs included), or [path] for a single run."""
    return find_runs(path) if (path / SEEDS_SUMMARY).exists() or (path / STUDY).exists() else [path]


def study_trials(path: Path) -> list[Path]:
    """A study's trial folders: runs, and seed groups with --seeds."""
    return sorted(p for p in path.iterdir() if p.is_dir() and ((p / RUN_RECORD).exists() or (p / SEEDS_SUMMARY).exists()))


def new_run_dir(name: str, root: Path = RUNS_ROOT) -> Path:
    """A fresh `root/<name>-<timestamp>` folder; a suffix keeps it from reusing one that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    make_dir(root)
    for attempt in range(1, 1000):
        path = root / (f"{name}-{stamp}" if attempt == 1 else f"{name}-{stamp}-{attempt}")
        try:
            make_dir(path, exist_ok=False)
        except FileExistsError:
            continue
        lock(path)
        return path
    raise UserError(f"{root}: cannot find a free run folder name for {name}-{stamp}")


def claim_run_dir(path: Path) -> Path:
    """Use `path` for a new run, locked for this process; refuse one that already holds files."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--run {path}: is a file; pick a new folder")
    make_dir(path)
    lock(path)
    if any(p.name != LOCK for p in path.iterdir()):
        unlock(path)
        raise UserError(f"--run {path}: already exists and is not empty; pick a new folder, "
                        f"or add --resume to continue the run in it")
    return path


_LOCKS: dict[Path, int] = {}  # run folder -> the open lock file this process holds


def lock(run_dir: Path) -> None:
    """Claim `run_dir` for this process until `unlock` (or the process' end): a second rnn train in
    it gets one line naming this process."""
    path = run_dir / LOCK
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise storage_error(path, err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(f"{run_dir}: in use by process {holder} (another rnn train); wait for it "
                            f"to end, or pick another folder") from None
        if path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the holder before us removed it as we opened it: take the new one
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _LOCKS[run_dir] = fd


def unlock(run_dir: Path) -> None:
    """Give `run_dir` up; the lock file goes with it."""
    fd = _LOCKS.pop(run_dir, None)
    if fd is not None:
        (run_dir / LOCK).unlink(missing_ok=True)
        os.close(fd)


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
        self.fields: dict = read_mapping(self.path) if self.path.exists() else {}

    def try_update(self, **fields) -> None:
        """`update`, where a failure is already being reported: a record that cannot be written
        (a full disk) must not hide the error that ended the run."""
        with contextlib.suppress(UserError):
            self.update(**fields)

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


def read_classes(run_dir: Path) -> tuple[str, ...]:
    """The run's class names; a run older than classes.json is IMDB's."""
    path = run_dir / CLASSES
    if not path.exists():
        return BINARY
    classes = read_mapping(path, {"classes": list})["classes"]
    if len(classes) < 2 or not all(isinstance(name, str) for name in classes):
        raise damaged(path, "expected a list of two or more class names")
    return tuple(classes)


def is_group(path: Path) -> bool:
    """Whether `path` is a seed group's folder (`rnn train --seeds`)."""
    return (path / SEEDS_SUMMARY).exists() and not (path / CONFIG).exists()


def seed_folders(group_dir: Path) -> list[Path]:
    """The folders of a seed group's runs, in the order of seeds.json, finished or not."""
    seeds = read_mapping(group_dir / SEEDS_SUMMARY, {"seeds": list})["seeds"]
    if not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        raise damaged(group_dir / SEEDS_SUMMARY, "expected a list of seeds")
    return [group_dir / f"seed-{seed}" for seed in seeds]


def group_members(group_dir: Path) -> list[Path]:
    """A seed group's runs in seed order, each finished (with its model), or one line saying which is not."""
    folders = seed_folders(group_dir)
    unfinished = [folder.name for folder in folders if not (folder / MODEL).exists()]
    if unfinished:
        raise UserError(f"{group_dir}: a seed group not finished ({', '.join(unfinished)} without {MODEL}), so not "
                        f"yet one model; finish it with `rnn train --resume --run {group_dir}`, or use one run, "
                        f"e.g. --run {folders[0]}")
    return folders


def remove_run(run_dir: Path) -> None:
    """Delete a run folder that holds no finished epoch (bad input found before training)."""
    for path in sorted(run_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    run_dir.rmdir()
