"""A finished run's model loaded on the backend it was trained with: the backend chosen before Keras
loads, the .keras file read or said to be damaged, a seed group averaged into one model, and `Trained`,
everything scoring new text needs."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from rnn_cli import backends
from rnn_cli.config import Config, TrainConfig, load_config
from rnn_cli.corpus import Vocabulary
from rnn_cli.errors import UserError
from rnn_cli.parsing import load_yaml
from rnn_cli.runs import (CHECKPOINT, CLASSES, CONFIG, MODEL, RUN_RECORD, VOCABULARY, damaged, group_members,
                          is_group, read_classes, read_mapping, read_run_config)


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

    import rnn_cli.pairs  # noqa: F401 - register the model's own layers, which Keras then loads
    import rnn_cli.pooling  # noqa: F401 - likewise

    if not zipfile.is_zipfile(path):  # Keras would call it "File not found"
        raise damaged(path, "not a .keras archive: truncated, or overwritten")
    from rnn_cli.gradients import summed_rows
    from rnn_cli.projected import faster_loops

    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # noqa: BLE001 - Keras reports a damaged file in many ways
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise damaged(path, f"Keras cannot load it: {reason[:200]}") from None
    if keras.backend.backend() == "torch" and getattr(model, "steps_per_execution", 1) != 1:
        model.steps_per_execution = 1  # a TensorFlow run's batches per call, which Keras' PyTorch trainer refuses
    return summed_rows(faster_loops(model))  # the loop and the optimizer's gradients it was trained with


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
