"""`rnn train --seeds N`: one config trained with N seeds, each run in a process of its own.

Why a process per seed: TensorFlow keeps every XLA-compiled program until the process ends (its
compilation cache has no eviction, tensorflow/tensorflow#64170), and each new model compiles its
own, so seeds trained one after another in one process grew with each (docs/performance.md). A fresh process
per seed gives every run the memory of a single `rnn train`. This module does not import
TensorFlow: the process that waits for the seeds stays small.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import multiprocessing.reduction
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

from rnn_cli import checkpoints, files, loading, runs, stopping
from rnn_cli.config import Config
from rnn_cli.errors import UserError
from rnn_cli.files import make_dir
from rnn_cli.plots import plot_curves
from rnn_cli.process_settings import progress_kind, skip_probed_imports
from rnn_cli.run_rows import group_row, run_row


def train_seeds(config: Config, group_dir: Path, seeds: int | None = None, *, resume: bool = False,
                echo: Callable[[str], None] = print, score_group: bool = True,
                **options) -> list[checkpoints.TrainResult]:
    """`seeds` runs of one config, seeds train.seed, train.seed + 1, ..., each in its own folder.

    The runs share the data split (data.seed); only initialisation, batch order and dropout
    change. `group_dir` gets seeds.json (mean and spread, as `rnn compare` shows them), one figure
    of every run's curves, and with `score_group` metrics.json: the group's test metrics as one
    model, the mean of its runs' probabilities (`score_isolated`). With `resume`, the group's own
    seeds are taken from seeds.json: finished runs are kept, a run with a finished epoch continues from it, the rest start. Other
    options are passed to `rnn_cli.training.train`, which runs in a child process (`train_isolated`).
    """
    record = runs.RunRecord(group_dir, runs.SEEDS_SUMMARY)  # seeds.json
    chosen = record.fields["seeds"] if resume else list(range(config.train.seed, config.train.seed + seeds))
    record.update(name=config.name, seeds=chosen, status="running")
    results = []
    try:
        for i, seed in enumerate(chosen, start=1):
            run_dir = group_dir / f"seed-{seed}"
            seeded = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
            kept = finished_result(run_dir, seeded) if resume else None
            if kept:
                echo(f"seed {seed} ({i}/{len(chosen)}): finished, kept: {run_dir}")
                results.append(kept)
                continue
            make_dir(run_dir, exist_ok=resume)
            results.append(train_isolated(seeded, run_dir, resume=(run_dir / runs.CHECKPOINT).exists(),
                                          echo=headed(echo, f"seed {seed} ({i}/{len(chosen)}): {run_dir}"),
                                          **options))
        if score_group:  # stopped or failed here, the group resumes to this step: its runs are kept
            score_isolated(group_dir, options.get("device", "auto"), echo)
    except BaseException as err:
        record.try_update(status="interrupted" if isinstance(err, KeyboardInterrupt) else "failed")
        raise
    summary = group_row([run_row(result.run_dir) for result in results], group_dir)
    record.update(**{**summary, "status": "finished"})  # the group's status, not its rows' (group_row's)
    plot_curves([(f"seed {r.run_dir.name.removeprefix('seed-')}", r.history) for r in results],
                group_dir / runs.CURVES, title=f"{config.name}: {len(chosen)} seeds")
    return results


def headed(echo: Callable[[str], None], header: str) -> Callable[[str], None]:
    """`echo`, which prints `header` before its first line: a run folder is named once its training has loaded
    the data and built the model, so a start that fails (and removes the folder) never names it."""
    said = False

    def headed_echo(line: str) -> None:
        nonlocal said
        if not said:
            said = True
            echo(header)
        echo(line)
    return headed_echo


def finished_result(run_dir: Path, config: Config) -> checkpoints.TrainResult | None:
    """The result of the run in `run_dir`, read back, if it ended with nothing left to do under
    `config` (--epochs may extend it); else None."""
    if not (run_dir / runs.RUN_RECORD).exists():
        return None
    if runs.read_mapping(run_dir / runs.RUN_RECORD).get("status") != "finished":
        return None
    result = checkpoints.read_result(run_dir)
    return None if checkpoints.epochs_left(result.history, config.train) else result


class Stopped(Exception):
    """A training that `watch` asked to stop, stopped as SIGTERM stops `rnn train` (epochs kept)."""


def train_isolated(config: Config, run_dir: Path, *, echo: Callable[[str], None] = print,
                   watch: Callable[[Path, str], bool] | None = None, **options) -> checkpoints.TrainResult:
    """`rnn_cli.training.train(config, run_dir, **options)` in a fresh process; its result read back.

    The child's lines come to `echo` here; its errors, Ctrl-C included, are raised here as they were
    raised there. `watch(run_dir, line)` sees each line after `echo`: when it returns True the child
    is stopped as a SIGTERM stops `rnn train`, and `Stopped` is raised once it has recorded where it
    stopped (`rnn tune` prunes trials so). Options must pickle (Keras callbacks defined at module
    level do). Progress (a bar, or lines) is decided here, where the user's terminal is: the child writes to
    the same standard error, and its lines come here.
    """
    options["progress"] = progress_kind(options.get("progress"))
    _isolated(_train_child, (config, run_dir, options), f"rnn train {run_dir.name}", run_dir, echo, watch)
    return checkpoints.read_result(run_dir)


def score_isolated(group_dir: Path, device: str = "auto", echo: Callable[[str], None] = print) -> dict:
    """The seed group's test metrics as one model, the mean of its runs' probabilities, scored on its test split
    in a process of its own (this one stays without Keras) and written to the group's metrics.json, with its
    model card."""
    _isolated(_score_child, (group_dir, device), f"rnn eval {group_dir.name}", group_dir, echo)
    metrics = runs.read_mapping(group_dir / runs.METRICS)
    echo(f"the group as one model (the mean of its {len(runs.group_members(group_dir))} runs' probabilities): "
         f"test accuracy {metrics['accuracy']:.4f}")
    return metrics


def _isolated(target, args: tuple, name: str, run_dir: Path, echo: Callable[[str], None],
              watch: Callable[[Path, str], bool] | None = None) -> None:
    """`target(sender, *args)` in a fresh process, its lines relayed to `echo` and its error raised here."""
    context = multiprocessing.get_context("spawn")  # fork would copy this process' threads and state
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(sender, *args), name=name)
    child.start()
    sender.close()  # the child holds the only sending end now: its exit ends the relay
    interrupted = []

    def pass_on(signum, frame):
        # Ctrl-C: a terminal's reaches the child too, another SIGINT (or a SIGTERM) only this
        # process. Pass it on as SIGINT (the child acts on the first it gets) and keep relaying until
        # the child has recorded where it stopped; a second signal here stops waiting.
        interrupted.append(signum)
        stopping.note(signum)
        stopping.handle_signals(dict.fromkeys(stopping.STOP_SIGNALS, _stop_waiting))
        os.kill(child.pid, signal.SIGINT)

    stopped = []

    def relay_line(line: str) -> None:
        echo(line)
        if watch is not None and not stopped and watch(run_dir, line):
            stopped.append(True)
            with contextlib.suppress(ProcessLookupError):  # it may have finished as the line came
                os.kill(child.pid, signal.SIGTERM)

    previous = stopping.handle_signals(dict.fromkeys(stopping.STOP_SIGNALS, pass_on))
    try:
        error = _relay(receiver, relay_line)
    finally:
        stopping.handle_signals(previous)
        receiver.close()
    child.join()
    if stopped and not interrupted and isinstance(error, KeyboardInterrupt):
        raise Stopped(f"{run_dir}: stopped")
    if interrupted or isinstance(error, KeyboardInterrupt):
        raise KeyboardInterrupt
    if error is not None:
        raise error
    if child.exitcode != 0:
        raise RuntimeError(f"{run_dir}: the process {name!r} ended with exit code {child.exitcode} "
                           "(a negative code is the signal that stopped it, e.g. -9 when out of memory)")


def _stop_waiting(signum, frame):
    """A second Ctrl-C or SIGTERM while a seed stops: the group stops waiting for it and records
    itself as interrupted (the seed, told once, records its own run)."""
    stopping.note(signum)
    raise KeyboardInterrupt


def _relay(receiver, echo: Callable[[str], None]) -> BaseException | None:
    """Pass the child's lines to `echo` until it ends; returns the error it sent, if any."""
    error = None
    while True:
        try:
            kind, payload = receiver.recv()
        except EOFError:
            return error
        if kind == "echo":
            echo(payload)
        else:
            error = payload


def _train_child(sender, config: Config, run_dir: Path, options: dict) -> None:
    """The child process: train, send each echoed line, send the error if one ends the training.

    Ctrl-C and SIGTERM stop it as they stop `rnn train` (rnn_cli.stopping); a second one is the
    first passed on by the group (a terminal's Ctrl-C reaches both processes) and is ignored.
    Once its result is on disk and its error sent, it exits without Python's shutdown: a training
    stopped mid-epoch leaves a tf.data iterator whose prefetch thread may be inside the batch
    generator, and destroying it during the shutdown could wait forever for that thread, keeping
    the group waiting too.
    """
    try:
        with stopping.stop_signals(again="ignore"):
            _start_child()
            runs.lock(run_dir)  # the seed's own folder too: `rnn train --resume` on it alone is refused
            from rnn_cli.process_settings import configure_training, load_backend

            load_backend(config.train, options.get("device", "auto"), run_dir)
            from rnn_cli.training import train

            configure_training(config, options.get("device", "auto"))
            train(config, run_dir, echo=lambda line: sender.send(("echo", line)), **options)
    except BaseException as err:  # noqa: BLE001 - Ctrl-C too: the parent raises it in turn
        with contextlib.suppress(OSError):  # the parent is gone (see _stop_with_parent): nobody to tell
            sender.send(("error", _portable(err)))
    finally:
        runs.unlock(run_dir)
        sender.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # the error, if any, went through the pipe; a crash would give another code


def _score_child(sender, group_dir: Path, device: str) -> None:
    """The child process of `score_isolated`: load the group as one model, score it, write metrics.json."""
    try:
        with stopping.stop_signals(again="ignore"):
            _start_child()
            from rnn_cli.config import load_config
            from rnn_cli.process_settings import configure, load_backend

            source = loading.model_source(group_dir)
            train_config = load_config(source / runs.CONFIG).train
            load_backend(train_config, device, source)
            configure(train_config, device)
            from rnn_cli.card import write_card
            from rnn_cli.evaluate import evaluate_run

            files.write_json(group_dir / runs.METRICS, evaluate_run(group_dir, None, []).metrics)
            write_card(group_dir)
    except BaseException as err:  # noqa: BLE001 - as _train_child
        with contextlib.suppress(OSError):
            sender.send(("error", _portable(err)))
    finally:
        sender.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _start_child() -> None:
    """What a child process does first: end with its parent, and load Keras as the `rnn` command does."""
    _stop_with_parent()
    skip_probed_imports()


def _stop_with_parent() -> None:
    """Linux: a SIGINT to this process when the one that started it dies (killed with SIGKILL, say),
    so the seed records where it stopped instead of training on unwatched."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1  # from linux/prctl.h
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGINT)
    if os.getppid() != multiprocessing.parent_process().pid:  # it died before prctl
        os.kill(os.getpid(), signal.SIGINT)


def _portable(err: BaseException) -> BaseException:
    """`err` as the parent can raise it: a user's error as it is, anything else with the child's
    traceback attached (or, if it does not pickle, a RuntimeError that holds it)."""
    if isinstance(err, (UserError, KeyboardInterrupt)):
        return err
    trace = "".join(traceback.format_exception(err)).rstrip()
    try:
        err.add_note(f"in the training process:\n{trace}")
        multiprocessing.reduction.ForkingPickler.dumps(err)
        return err
    except Exception:  # noqa: BLE001 - an error that cannot travel: send its text
        return RuntimeError(f"in the training process:\n{trace}")
