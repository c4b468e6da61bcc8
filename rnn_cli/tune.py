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

This module runs the trials; the space is `rnn_cli.space`, the study and its Optuna side `rnn_cli.study`,
the storage `rnn_cli.storage`, the report `rnn_cli.tune_report`.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
from pathlib import Path
from typing import Callable

from rnn_cli import checkpoints, runs
from rnn_cli.config import Config, config_from_dict, dump_config, to_dict
from rnn_cli.errors import StorageError
from rnn_cli.files import make_dir, write_atomic
from rnn_cli.seeds import Stopped, train_isolated, train_seeds
from rnn_cli.study import Study, check_settings, optuna_study, write_study

BEST_CONFIG = "best.yaml"  # the best trial's config, a plain config file
DEFAULT_TRIALS = 20
HOST = socket.gethostname()


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
            search.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
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
