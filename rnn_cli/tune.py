"""`rnn tune`: a hyperparameter search over config keys with Optuna; every trial an ordinary run.

A study lives in runs/<study>/: study.json (the base config and the search space), one folder per
trial (trial-000/, ...: a run folder, or a seed group with --seeds), and, with no --storage, Optuna's
journal file. Each trial is `rnn train` of the base config with the trial's values, in a process of
its own (`seeds.train_isolated`), so `rnn compare`, `plot`, `eval`, `predict` and `--resume` work on
it. After each epoch this process reports the trial's validation accuracy to Optuna; a trial the
pruner gives up on is stopped as SIGTERM stops `rnn train` (its epochs kept) and recorded as pruned.
Trials are scored by their best validation accuracy and never see the test split: it is scored once,
for the trial chosen (`rnn eval`, or `rnn train --seeds` on the best config).

Several `rnn tune` processes, on one machine or many, work on one study through its storage: the
journal file (several processes on one machine) or a PostgreSQL database (`--storage`). This process
imports neither TensorFlow nor Keras; each trial's process does.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from rnn_cli import checkpoints, runs
from rnn_cli.compare import cells, compare, readable
from rnn_cli.config import SAFE_NAME, Config, ConfigError, config_from_dict, dump_config, load_config, to_dict
from rnn_cli.errors import StorageError, UserError, require_extra
from rnn_cli.files import atomic_path, make_dir, write_atomic, write_json
from rnn_cli.parsing import excerpt, is_finite, load_yaml
from rnn_cli.seeds import Stopped, train_isolated, train_seeds

STUDY_FILE = "study.journal"  # Optuna's journal, when no --storage is given
BEST_CONFIG = "best.yaml"  # the best trial's config, a plain config file
HISTORY_PNG = "optimization_history.png"
SLICES_PNG = "val_accuracy_by_key.png"
KINDS = ("uniform", "log_uniform", "int", "choice")
DEFAULT_TRIALS = 20
CONNECT_TIMEOUT = 10  # seconds a database server may take to accept a connection and answer its start-up
STATEMENT_TIMEOUT = 60  # seconds one statement may run on it (Optuna's are small)
SETTINGS = "rnn_tune"  # the study's user attribute holding its base config, space and seeds
HOST = socket.gethostname()


@dataclass(frozen=True)
class Param:
    """One searched key: `kind` over [low, high] (a step, a log scale), or one of `choices`."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.kind == "log_uniform")

    def extremes(self) -> list:
        """Values that stand for the whole range, to check against the config."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]


def load_space(path: Path, base: Config) -> tuple[Param, ...]:
    """The search space in `path`, checked: every key one `--set` takes, every range's ends and every
    choice a value the config allows."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), f"--space {path}")
    except FileNotFoundError:
        raise UserError(f"--space {path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"--space {path}: cannot read it as YAML ({str(err).splitlines()[0]})") from None
    return parse_space(raw, base, str(path))


def parse_space(raw, base: Config, where: str) -> tuple[Param, ...]:
    example = "e.g. train.learning_rate: {log_uniform: [1e-4, 1e-2]}"
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{where}: a search space is a mapping of config keys to ranges, {example}")
    space = tuple(parse_param(key, spec, where) for key, spec in raw.items())
    for param in space:
        for value in param.extremes():
            item = f"{param.key}={json.dumps(value)}"
            try:
                config_from_dict(to_dict(base), [item], source=where)
            except ConfigError as err:  # said of the space's key, not of a --set the user never typed
                message = str(err)
                own = f"{where}: {param.key}: {message.removeprefix(f'--set {item}: ')}"
                raise UserError(own if message.startswith(f"--set {item}: ") else
                                message.replace("--set ", f"{where}: ", 1) if message.startswith("--set ")
                                else message) from None
    return space


def parse_param(key, spec, where: str) -> Param:
    """One key's range: {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi], step: s, log: b},
    {choice: [a, b, ...]}."""
    at = f"{where}: {key}"
    kinds = [kind for kind in KINDS if isinstance(spec, dict) and kind in spec]
    if not isinstance(key, str) or not re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)+", key):
        raise UserError(f"{where}: {excerpt(key)} is not a config key as --set takes it (train.learning_rate)")
    if len(kinds) != 1:
        raise UserError(f"{at}: expected one of {', '.join(KINDS)}, e.g. {{log_uniform: [1e-4, 1e-2]}}; "
                        f"got {excerpt(spec)}")
    kind = kinds[0]
    extra = set(spec) - {kind, "step", "log"}
    if extra or (kind in ("choice", "log_uniform") and set(spec) - {kind}):
        raise UserError(f"{at}: unknown setting(s) {', '.join(map(str, sorted(extra or set(spec) - {kind})))} "
                        f"for {kind}")
    value = spec[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value or not all(
                v is None or isinstance(v, (bool, int, float, str)) for v in value):
            raise UserError(f"{at}: choice: expected a list of numbers, strings, booleans or null")
        return Param(key, kind, choices=tuple(value))
    number = int if kind == "int" else (int, float)
    if (not isinstance(value, list) or len(value) != 2 or not all(
            isinstance(v, number) and not isinstance(v, bool) and is_finite(v) for v in value)
            or not value[0] < value[1]):
        what = "integers" if kind == "int" else "numbers"
        raise UserError(f"{at}: {kind}: expected [low, high], two finite {what} with low < high; got {excerpt(value)}")
    low, high = value
    if kind == "log_uniform" and low <= 0:
        raise UserError(f"{at}: log_uniform: the range must be above 0; got {excerpt(value)}")
    step, log = spec.get("step"), spec.get("log", False)
    if step is not None and (not isinstance(step, number) or isinstance(step, bool) or step <= 0):
        raise UserError(f"{at}: step: expected a number above 0; got {excerpt(step)}")
    if not isinstance(log, bool) or (log and (kind != "int" or low <= 0 or (step not in (None, 1)))):
        raise UserError(f"{at}: log: true needs int with low above 0 and no step")
    return Param(key, kind, low, high, step, log)


def space_to_raw(space: tuple[Param, ...]) -> dict:
    """The space as the YAML mapping it was read from (study.json keeps it)."""
    raw = {}
    for p in space:
        entry = {p.kind: list(p.choices) if p.kind == "choice" else [p.low, p.high]}
        if p.step is not None:
            entry["step"] = p.step
        if p.log:
            entry["log"] = True
        raw[p.key] = entry
    return raw


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
    storage = open_storage(study)
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


def open_storage(study: Study):
    """The journal file in the study folder, or the database of --storage (checked by connecting)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if study.storage is None:
        make_dir(study.folder)
        # An absolute path: Optuna's default lock is a symlink to the path given, which a relative
        # path leaves dangling, and a dangling lock left by a killed worker is never broken. A lock
        # is held for one write; one held for 10 s is a dead worker's.
        path = str((study.folder / STUDY_FILE).resolve())
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path, grace_period=10)))
    if not re.match(r"(postgresql|sqlite)(\+\w+)?://", study.storage):
        raise UserError(f"--storage {hidden(study.storage)}: expected postgresql://USER:PASSWORD@HOST:PORT/DB")
    for attempt in range(3):
        try:
            # A worker that dies (kill -9, a lost machine) stops beating: its trial is failed after the
            # grace period, and the next worker retries it.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(study.storage, heartbeat_interval=30, grace_period=120,
                                  heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(1),
                                  engine_kwargs={"connect_args": timeouts(study.storage)})
        except Exception as err:  # noqa: BLE001 - SQLAlchemy and its drivers fail in many ways
            # Workers started together on an empty database race to create Optuna's tables: the
            # losers find them made when they try again.
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            if "timeout" in reason.lower():  # a server that does not answer: waiting again would not help
                wait = timeouts(study.storage).get("connect_timeout")
                reason = f"no answer within {wait} s; is it a PostgreSQL server, and up? ({reason})"
                break
            if "password" in reason.lower():
                reason += "; give --storage with the password (study.json keeps none), or set PGPASSWORD"
            if attempt < 2:
                time.sleep(1 + attempt)
    for secret in secrets(study.storage):  # a driver's message might quote the connection string
        reason = reason.replace(secret, "***")
    raise UserError(f"--storage {hidden(study.storage)}: cannot open it ({reason})")


def timeouts(url: str) -> dict:
    """The driver's connection settings that bound every wait on the database server: connecting (a server that
    accepts and never answers) and each statement; a setting in the URL itself wins."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    settings = {"connect_timeout": CONNECT_TIMEOUT, "options": f"-c statement_timeout={STATEMENT_TIMEOUT * 1000}"}
    return {**settings, **{key: parsed.query[key] for key in settings if key in parsed.query}}


def hidden(url: str) -> str:
    """A database URL as messages show it: its password, in any form SQLAlchemy reads it (USER:PASSWORD@,
    :PASSWORD@, ?password=), replaced by ***. SQLAlchemy's own parser, not a pattern: it is what connects."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "(a URL that does not parse)"
    masked = {key: "***" for key in parsed.query if "password" in key.lower()}
    return parsed.update_query_dict(masked).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def kept_url(url: str | None) -> str | None:
    """A database URL as study.json keeps it: without its password (PostgreSQL's client finds it in PGPASSWORD or
    ~/.pgpass, or --storage gives it again)."""
    from sqlalchemy.engine import URL, make_url

    if url is None:
        return None
    parsed = make_url(url)
    query = {key: value for key, value in parsed.query.items() if "password" not in key.lower()}
    return URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      query).render_as_string(hide_password=False)


def secrets(url: str) -> list[str]:
    """The passwords in a database URL (its password and any password-like query value)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return [url]
    values = [parsed.password, *(v for key, v in parsed.query.items() if "password" in key.lower())]
    flat = [item for value in values if value for item in ([value] if isinstance(value, str) else value)]
    return sorted(set(flat), key=len, reverse=True)


def tune(study: Study, trials: int | None, timeout: float | None, device: str,
         echo: Callable[[str], None] = print) -> None:
    """Run trials until the study has `trials` finished ones (every worker counting), or `timeout`
    minutes have passed (a trial under way finishes)."""
    import optuna
    from optuna.trial import TrialState

    target = trials or DEFAULT_TRIALS
    search = optuna_study(study)
    check_settings(search, study)
    if study.new:
        write_study(study)
    requeue_stopped(search, study, echo)
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    echo(f"study {study.name}: {study.folder}, {len(search.get_trials(states=done))} of {target} trials finished")

    def objective(trial):
        return run_trial(trial, study, device, echo)

    search.optimize(objective, timeout=None if timeout is None else timeout * 60, catch=(TrialFailed,),
                    callbacks=[optuna.study.MaxTrialsCallback(target, states=done)],
                    n_trials=max(target - len(search.get_trials(states=done)), 0))
    write_best(search, study, echo)


def run_trial(trial, study: Study, device: str, echo: Callable[[str], None]) -> float:
    """One trial: its config trained (over --seeds seeds) in its folder; its best validation accuracy."""
    import optuna

    values = {param.key: param.suggest(trial) for param in study.space}
    config = trial_config(study.base, values)
    resumed = trial.user_attrs.get("continues")
    run_dir = study.folder / (resumed or f"trial-{trial.number:03d}")
    for key, value in {"folder": run_dir.name, "host": HOST, "pid": os.getpid()}.items():
        trial.set_user_attr(key, value)
    echo(f"trial {trial.number}: {shown(values)}  {run_dir}" + (f" (continues trial {trial.user_attrs.get('of')})"
                                                          if resumed else ""))
    first = run_dir / f"seed-{study.base.train.seed}" if study.seeds > 1 else run_dir
    options = dict(device=device, progress=False, score_test=False, watch=pruning_watch(trial, first),
                   echo=lambda line: echo(f"  {line}"), hparams=values)
    try:
        make_dir(run_dir)
        if study.seeds > 1:
            # A trial is chosen by validation: the group's test score as one model would only cost time.
            results = train_seeds(config, run_dir, study.seeds, resume=(run_dir / runs.SEEDS_SUMMARY).exists(),
                                  score_group=False, **options)
        else:
            results = [train_isolated(config, run_dir, resume=(run_dir / runs.CHECKPOINT).exists(), **options)]
    except Stopped:
        runs.RunRecord(first).try_update(status="pruned")
        history = checkpoints.read_history(first)
        echo(f"trial {trial.number}: pruned after epoch {len(history)} "
             f"(val_accuracy {history[-1]['val_accuracy']:.4f})" if history else f"trial {trial.number}: pruned")
        raise optuna.TrialPruned() from None
    except KeyboardInterrupt:
        trial.set_user_attr("stopped", "interrupted")
        raise
    except StorageError:
        raise  # a full disk fails every trial after: stop and say so
    except Exception as err:  # noqa: BLE001 - one trial's failure (out of memory, a bad value) is the trial's
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        echo(f"trial {trial.number}: failed: {reason}")
        raise TrialFailed(reason) from None
    value = statistics.mean(checkpoints.best_row(result.history)["val_accuracy"] for result in results)
    echo(f"trial {trial.number}: best val_accuracy {value:.4f}" + (f" (mean of {study.seeds} seeds)"
                                                                   if study.seeds > 1 else ""))
    return value


class TrialFailed(Exception):
    """A trial whose training failed; the study goes on with the next."""


def shown(values: dict) -> str:
    """Trial values as `--set` takes them, floats to four significant digits."""
    return " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                    for key, value in values.items())


def trial_config(base: Config, values: dict) -> Config:
    return config_from_dict(to_dict(base), [f"{key}={json.dumps(value)}" for key, value in values.items()],
                            source="the trial")


def pruning_watch(trial, first_run: Path):
    """A `train_isolated` watch: after each epoch of the first run, report its validation accuracy
    and ask the pruner."""
    reported = set()

    def watch(run_dir: Path, line: str) -> bool:
        if run_dir != first_run or not line.startswith("epoch "):
            return False
        for row in checkpoints.read_history(run_dir):
            if row["epoch"] not in reported:
                trial.report(row["val_accuracy"], row["epoch"])
                reported.add(row["epoch"])
        return trial.should_prune()

    return watch


def requeue_stopped(search, study: Study, echo: Callable[[str], None]) -> None:
    """Trials a stopped worker left (interrupted, or still marked running by a process of this machine
    that is gone) are queued again, to continue in their own folders from their last finished epoch."""
    from optuna.trial import TrialState

    trials = search.get_trials(deepcopy=False)
    continued = {t.user_attrs.get("of") for t in trials}
    for t in trials:
        gone = (t.state == TrialState.RUNNING and t.user_attrs.get("host") == HOST
                and not alive(t.user_attrs.get("pid")))
        if gone:
            # Its worker was killed (kill -9): nothing will finish it.
            search._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        stopped = gone or (t.state == TrialState.FAIL and t.user_attrs.get("stopped") == "interrupted")
        if stopped and t.number not in continued and t.user_attrs.get("host") == HOST and "folder" in t.user_attrs:
            search.enqueue_trial(t.params, user_attrs={"continues": t.user_attrs["folder"], "of": t.number})
            echo(f"trial {t.number} was stopped: queued again, to continue in {study.folder / t.user_attrs['folder']}")


def alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_best(search, study: Study, echo: Callable[[str], None]) -> Path | None:
    """The best trial's config as a plain config file in the study folder."""
    from optuna.trial import TrialState

    if not search.get_trials(states=(TrialState.COMPLETE,)):
        echo(f"study {study.name}: no trial finished yet")
        return None
    best = search.best_trial
    config = trial_config(study.base, best.params)
    path = study.folder / BEST_CONFIG
    write_atomic(path, f"# rnn tune: study {study.name}, trial {best.number}, best val_accuracy {best.value:.4f}\n"
                 + dump_config(config))
    echo(f"best: trial {best.number}, val_accuracy {best.value:.4f}: {shown(best.params)}")
    echo(f"its config: {path} (rnn train --config {path} trains it again; its test split is not scored yet)")
    return path


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
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in table)


def plot_study(search, study: Study) -> list[Path]:
    """Optuna's optimisation history and slice plots, as PNGs in the study folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

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
            with atomic_path(path) as tmp:
                figure.savefig(tmp, dpi=100, bbox_inches="tight")
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
