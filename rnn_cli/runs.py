"""Run folders and the files in them: names, finding, claiming, reading back. One writer per file;
every write is atomic (`rnn_cli.files`)."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from rnn_cli import backends
from rnn_cli.config import Config, TrainConfig, load_config, read_yaml
from rnn_cli.corpus import BINARY, Vocabulary
from rnn_cli.errors import ConfigError, UserError
from rnn_cli.files import make_dir, read_json, replace, storage_error, write_atomic, write_json
from rnn_cli.parsing import load_yaml

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


def recorded_backend(run_dir: Path) -> str | None:
    """The backend a run's run.json says it was trained with, if it names one."""
    return _backend_in(run_dir / RUN_RECORD, lambda raw: raw.get("backend"))


def use_backend_of(run_dir: Path, device: str = "auto") -> str:
    """`backends.use` the backend of the run in `run_dir` as training chose it (its config's
    train.backend, else KERAS_BACKEND, else run.json's), unless Keras is loaded already: a .keras
    file loads on any backend. A file that cannot be read names none: loading the run says why."""
    loaded = backends.loaded_backend()
    if loaded is not None:
        return loaded
    if is_group(run_dir):  # its runs' backend (loading the group says what is wrong with it, if anything)
        run_dir = next(iter(sorted(run_dir.glob("seed-*"))), run_dir)
    configured = _backend_in(run_dir / CONFIG, lambda raw: (raw.get("train") or {}).get("backend"))
    return backends.use(backends.chosen(TrainConfig(backend=configured), recorded_backend(run_dir)), device)


def _backend_in(path: Path, find) -> str | None:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), str(path))  # JSON is YAML
        found = find(raw) if isinstance(raw, dict) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, UserError, AttributeError):
        return None
    return found if found in backends.BACKENDS else None


def load_keras(path: Path):
    """A Keras model file of a run, or one line saying it is damaged."""
    use_backend_of(path.parent)  # before Keras loads: the backend the run was trained with
    import keras  # here, not at the top: the seed group's process reads run folders without Keras

    import rnn_cli.pooling  # noqa: F401 - registers the model's own layer, which Keras then loads

    if not zipfile.is_zipfile(path):  # Keras would call it "File not found"
        raise damaged(path, "not a .keras archive: truncated, or overwritten")
    try:
        return keras.saving.load_model(path)
    except Exception as err:  # noqa: BLE001 - Keras reports a damaged file in many ways
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise damaged(path, f"Keras cannot load it: {reason[:200]}") from None


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


def model_source(run_dir: Path) -> Path:
    """The folder whose config, vocabulary and classes go with the model of `run_dir`: its own, or for a seed
    group its first run's (every run of a group has the same but train.seed)."""
    return group_members(run_dir)[0] if is_group(run_dir) else run_dir


def load_trained(run_dir: Path):
    """The run's model.keras, or for a seed group one model averaging its runs' probabilities
    (`rnn_cli.ensemble`); or an error that says why there is none."""
    path = run_dir / MODEL
    if not path.exists() and is_group(run_dir):
        return load_group(run_dir)
    if not path.exists() and (run_dir / RUN_RECORD).exists() and read_mapping(run_dir / RUN_RECORD).get("kind") == "baseline":
        raise UserError(f"{run_dir}: a baseline run (rnn baseline), a reference for rnn compare; it keeps no model "
                        "to score text with")
    if not path.exists():
        hint = (f"it has a checkpoint: finish it with `rnn train --resume --run {run_dir}`"
                if (run_dir / CHECKPOINT).exists() else "train one with `rnn train`")
        raise UserError(f"{run_dir}: no {MODEL} in this run; {hint}")
    return load_keras(path)


def load_group(group_dir: Path):
    """A seed group's runs as one model (`rnn_cli.ensemble.average`), once they are shown to read text alike:
    one vocabulary, one set of classes, one config but for train.seed."""
    from rnn_cli.ensemble import average  # Keras: not at the top (the seed group's waiting process)

    folders = group_members(group_dir)
    first = folders[0]
    for folder in folders[1:]:
        for name in (VOCABULARY, CLASSES):
            if (first / name).exists() != (folder / name).exists() or (
                    (first / name).exists() and (first / name).read_bytes() != (folder / name).read_bytes()):
                raise UserError(f"{folder / name}: not the same as {first / name}; the group's runs must read text "
                                "alike to be averaged (were they trained on different data?)")
        if _without_seed(folder) != _without_seed(first):
            raise UserError(f"{folder / CONFIG}: differs from {first / CONFIG} in more than train.seed; a group "
                            "averages the seeds of one config")
    return average([load_keras(folder / MODEL) for folder in folders], [f"seed_{f.name.removeprefix('seed-')}"
                                                                          for f in folders])


def _without_seed(run_dir: Path) -> dict:
    raw = read_run_config(run_dir)
    train = dict(raw.get("train") or {})
    train.pop("seed", None)
    return {**raw, "train": train}


@dataclass(frozen=True)
class Trained:
    """What scoring new text with a finished run needs, loaded once (rnn predict, explain, serve, export).
    A seed group loads as one: `model` averages its runs' probabilities, `members` are their folders."""

    run_dir: Path
    config: Config
    vocabulary: Vocabulary
    classes: tuple[str, ...]
    model: object  # keras.Model
    members: tuple[Path, ...] = ()  # a seed group's runs; () for one run

    @property
    def source(self) -> Path:
        """The folder of the config, vocabulary and classes: the run's own, or a seed group's first run's."""
        return self.members[0] if self.members else self.run_dir

    @classmethod
    def load(cls, run_dir: Path) -> Trained:
        model = load_trained(run_dir)  # first: a folder with no model is told how to get one
        members = tuple(group_members(run_dir)) if is_group(run_dir) else ()
        source = members[0] if members else run_dir
        return cls(run_dir, load_config(source / CONFIG), Vocabulary.load(source / VOCABULARY),
                   read_classes(source), model, members)

    @classmethod
    def of(cls, run: Path | Trained) -> Trained:
        """`run` itself when loaded already, else the run in that folder, loaded."""
        return run if isinstance(run, Trained) else cls.load(run)


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


def remove_run(run_dir: Path) -> None:
    """Delete a run folder that holds no finished epoch (bad input found before training)."""
    for path in sorted(run_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    run_dir.rmdir()
