"""An `rnn tune` study: its folder (study.json: the base config, the space, seeds per trial), opened new or
continued, and the Optuna study behind it (TPE seeded per trial, the median pruner), whose storage
records the settings every worker must share."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rnn_cli import runs
from rnn_cli.config import SAFE_NAME, Config, config_from_dict, load_config, to_dict
from rnn_cli.errors import UserError, require_extra
from rnn_cli.files import make_dir, write_json
from rnn_cli.space import Param, load_space, parse_space, space_to_raw
from rnn_cli.storage import hidden, kept_url, open_storage

SETTINGS = "rnn_tune"  # the study's user attribute holding its base config, space and seeds


@dataclass(frozen=True)
class Study:
    """A study as rnn tune runs it: its folder, the base config, the space, seeds per trial, storage."""

    name: str
    folder: Path
    base: Config
    space: tuple[Param, ...]
    seeds: int
    storage: str | None  # None: the journal file in the folder
    new: bool = False  # not yet written: its folder and study.json come once its storage opens


def newest_study(root: Path = runs.RUNS_ROOT) -> Path:
    """The folder of the most recently started study under `root`."""
    studies = [path.parent for path in root.glob(f"*/{runs.STUDY}")]
    if not studies:
        raise UserError(f"no study under {root}/; start one with `rnn tune --config BASE.yaml --space SPACE.yaml`")
    return max(studies, key=lambda p: ((p / runs.STUDY).stat().st_mtime, p.name))


def base_config(path: Path | None, overrides: list[str]) -> Config | None:
    """The base config of a new study with `overrides` (--set, --data, --epochs, --limit), its backend and
    extras checked before any trial starts; None without --config (a study continued)."""
    if path is None:
        if overrides:
            raise UserError("--data, --epochs, --limit and --set change the base config: give --config too")
        return None
    from rnn_cli.backends import ready

    base = load_config(path, overrides)
    ready(base.train)
    if base.train.tensorboard:
        require_extra("tensorboard", "tensorboard")
    return base


def open_study(name: str | None, base: Config | None, space_path: Path | None, storage: str | None,
               seeds: int | None) -> Study:
    """A new study (base and space given), or the one named, continued with its own base and space."""
    if name is not None and not SAFE_NAME.fullmatch(name):
        raise UserError(f"--study {name!r}: one folder name, no / or \\, not starting with a dot")
    folder = runs.RUNS_ROOT / name if name else None
    if folder is not None and (folder / runs.STUDY).exists():
        kept = runs.read_mapping(folder / runs.STUDY, {"base": dict, "space": dict, "seeds": int})
        stored = config_from_dict(kept["base"], source=str(folder / runs.STUDY))
        space = parse_space(kept["space"], stored, str(folder / runs.STUDY))
        if base is not None and to_dict(base) != to_dict(stored) or space_path is not None and (
                space_to_raw(load_space(space_path, stored)) != kept["space"]):
            raise UserError(f"--study {name}: started with another config or space ({folder / runs.STUDY}); "
                            f"continue it without --config and --space, or name a new study")
        if seeds is not None and seeds != kept["seeds"]:
            raise UserError(f"--seeds {seeds}: study {name} scores trials over {kept['seeds']} seed(s)")
        recorded = kept.get("storage")
        if storage is not None and (recorded is None or kept_url(storage) != kept_url(recorded)):
            raise UserError(f"--storage: study {name} keeps its trials in "
                            f"{hidden(recorded) if recorded else 'its journal file'}")
        return Study(name, folder, stored, space, kept["seeds"], storage or recorded)
    if base is None and space_path is None and name is not None and storage is not None:
        return study_in_storage(name, storage, seeds)  # a worker on another machine
    if base is None or space_path is None:
        missing = f"no study {name} under {runs.RUNS_ROOT}/" if name else "a new study"
        raise UserError(f"{missing}: give --config BASE.yaml and --space SPACE.yaml to start one")
    space = load_space(space_path, base)
    name = name or f"{base.name}-tune-{time.strftime('%Y%m%d-%H%M%S')}"
    return Study(name, runs.RUNS_ROOT / name, base, space, seeds or 1, storage, new=True)


def study_in_storage(name: str, storage: str, seeds: int | None) -> Study:
    """A study another machine started in the database: its base config and space as it recorded them."""
    placeholder = Study(name, runs.RUNS_ROOT / name, Config(), (), 1, storage)
    recorded = optuna_study(placeholder, create=False).user_attrs.get(SETTINGS)
    if not isinstance(recorded, dict):
        raise UserError(f"--study {name}: not a study rnn tune started in {hidden(storage)}")
    base = config_from_dict(recorded["base"], source=f"study {name}")
    if seeds is not None and seeds != recorded["seeds"]:
        raise UserError(f"--seeds {seeds}: study {name} scores trials over {recorded['seeds']} seed(s)")
    return Study(name, runs.RUNS_ROOT / name, base, parse_space(recorded["space"], base, f"study {name}"),
                 recorded["seeds"], storage, new=True)


def check_settings(search, study: Study) -> None:
    """Every worker of a study trains the same base config over the same space: the first records
    them in the storage, the others are checked against it."""
    mine = json.loads(json.dumps({"base": to_dict(study.base), "space": space_to_raw(study.space),
                                  "seeds": study.seeds}))
    recorded = search.user_attrs.get(SETTINGS)
    if recorded is None:
        search.set_user_attr(SETTINGS, mine)
    elif recorded != mine:
        raise UserError(f"--study {study.name}: its workers train another base config or space; give the same "
                        f"--config, --space and --seeds, or none of them to take the study's own")


def write_study(study: Study) -> None:
    """The study's folder and study.json (what `--study NAME` continues with)."""
    make_dir(study.folder)
    if not (study.folder / runs.STUDY).exists():  # another worker may have written it first
        write_json(study.folder / runs.STUDY, {"name": study.name, "base": to_dict(study.base),
                                               "space": space_to_raw(study.space), "seeds": study.seeds,
                                               "storage": kept_url(study.storage)})


def optuna_study(study: Study, create: bool = True):
    """The Optuna study: TPE sampler, median pruner, maximising best validation accuracy."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # this module says what happens, in its own lines
    storage = open_storage(study.storage, study.folder)
    sampler = trial_seeded_sampler(study.base.train.seed)
    # A trial is compared with the median of the others at the same epoch, from its first, once five
    # trials have finished: the first epoch already costs a fifth of a five-epoch trial.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5)
    try:
        if not create:
            return optuna.load_study(study_name=study.name, storage=storage, sampler=sampler, pruner=pruner)
        return optuna.create_study(study_name=study.name, storage=storage, sampler=sampler, pruner=pruner,
                                   direction="maximize", load_if_exists=True)
    except KeyError:
        where = hidden(study.storage) if study.storage else "its journal file"
        raise UserError(f"--study {study.name}: not in {where}") from None


def trial_seeded_sampler(seed: int):
    """TPE (multivariate, with the constant liar: a trial under way counts as a poor one, so that workers spread
    out), seeded anew before each trial from `seed` and the trial's number. One TPE seeded once draws the same
    points in every process: two workers, or a study continued, proposed what an earlier trial had tried."""
    import optuna

    def tpe(trial_number: int | None = None):
        mixed = seed if trial_number is None else (seed * 1_000_003 + trial_number) % 2**32
        return optuna.samplers.TPESampler(seed=mixed, multivariate=True, constant_liar=True)

    class TrialSeeded(optuna.samplers.BaseSampler):
        def __init__(self):
            self.inner = tpe()

        def before_trial(self, study, trial):
            self.inner = tpe(trial.number)  # trial numbers are the storage's: no two workers share one
            self.inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self.inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self.inner.after_trial(study, trial, state, values)

        def reseed_rng(self):
            self.inner.reseed_rng()

    return TrialSeeded()
