"""Train a config into a run folder: prepare (data, model), fit (every epoch committed to the
folder), finish (best weights, model.keras, test metrics, curves). Resumable at any finished epoch."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from rnn_cli import __version__, backends, checkpoints, files, loading, runs
from rnn_cli.batches import Batches
from rnn_cli.memory import check_batches_fit
from rnn_cli.callbacks import RunRecorder, progress_callbacks, stops_at_batch_end
from rnn_cli.card import write_card
from rnn_cli.compiled import compile_cache_folder
from rnn_cli.config import Config, DataConfig, TrainConfig, dump_config
from rnn_cli.corpus import Vocabulary
from rnn_cli.data import Splits, load_data
from rnn_cli.encoding import bucket_lengths, bucket_width
from rnn_cli.files import write_atomic, write_json
from rnn_cli.inference import evaluate_model
from rnn_cli.model import (averages_over_weights, build_model, build_training_state, compile_model, keeps_average,
                           kernel_warnings, masks_padding, parameters_before_head, precision_warnings, save_model,
                           start_embedding, summary_text)
from rnn_cli.plots import plot_curves
from rnn_cli.process_settings import current_backend, determinism, progress_kind, select_device, set_seed, threads
from rnn_cli.projected import skips_padding


def train(config: Config, run_dir: Path, *, device: str = "auto", resume: bool = False,
          echo: Callable[[str], None] = print, warn: Callable[[str], None] | None = None,
          progress: bool | str | None = None, callbacks: tuple = (), score_test: bool = True,
          hparams: dict | None = None) -> checkpoints.TrainResult:
    """Train `config` into `run_dir`, or continue the run there with `resume`.

    Process-wide settings (repeatable arithmetic, memory) are the caller's: `rnn_cli.process_settings.configure`.

    Args:
        config: the checked config (on resume, the run's own).
        run_dir: an empty folder for a new run, the run's folder on resume.
        device: "auto", "cpu" or "gpu".
        resume: continue from the run's last finished epoch, optimizer state included.
        echo: where per-epoch lines go (a no-op for --quiet).
        warn: where warnings go; standard error when None.
        progress: within each epoch, a tqdm bar or a line every few seconds (`process.progress_kind`):
            None means a bar on a terminal, lines elsewhere; False, none.
        callbacks: extra Keras callbacks (tests use one to interrupt a run).
        score_test: score the test split at the end; `rnn tune`'s trials do not (they are chosen by
            validation, and the test split is scored once, for the trial chosen).
        hparams: with train.tensorboard, the values an `rnn tune` trial tries, for TensorBoard's
            HParams dashboard.

    Returns:
        The history, best epoch and test metrics; every file is already in `run_dir`.
    """
    backend = current_backend()
    used_device = select_device(device, backend)
    history = checkpoints.recover(run_dir) if resume else []
    plan = backends.plan(config, backend, used_device)
    splits, model = prepare(config, run_dir, resume, history, plan, echo)
    record = runs.RunRecord(run_dir)  # after prepare, which may have recorded the word vectors
    if masks_padding(model) != plan.masked:  # a resumed run keeps its padding, whatever the device now
        plan = backends.plan(config, backend, used_device, masked=masks_padding(model))
    data = batch_data(config, splits, model)
    record_start(record, config, splits, model, used_device, history, backend, plan, data)
    for line in device_warnings(config, used_device, plan.kernels, backend):
        (warn or stderr)(line)
    recorder = RunRecorder(run_dir, config.train, history, echo)
    if config.train.tensorboard:
        callbacks = (*callbacks, *tensorboard_callbacks(run_dir, hparams))
    try:
        train_seconds = fit(model, splits, config, data, recorder, progress, callbacks)
        metrics = finish(model, splits, config, run_dir, recorder, record, train_seconds, score_test)
    except KeyboardInterrupt:
        record.try_update(status="interrupted", epochs_done=len(history), best_epoch=recorder.best_epoch())
        raise
    except Exception as err:
        record.try_update(status="failed", error=f"{type(err).__name__}: {err}", epochs_done=len(history))
        raise
    return checkpoints.TrainResult(run_dir, history, recorder.best_epoch(), metrics, used_device)


def tensorboard_callbacks(run_dir: Path, hparams: dict | None) -> list:
    """Keras' TensorBoard callback (per-epoch loss, accuracy, learning rate), and the trial's values
    for the HParams dashboard, in RUN/tensorboard/."""
    folder = run_dir / runs.TENSORBOARD
    found = [keras.callbacks.TensorBoard(log_dir=str(folder), write_graph=False, profile_batch=0)]
    if hparams:
        from tensorboard.plugins.hparams import api as hp

        found.append(hp.KerasCallback(str(folder / "validation"), hparams, trial_id=run_dir.name))
    return found


def prepare(config: Config, run_dir: Path, resume: bool, history: list[dict],
            plan: backends.Plan, echo: Callable[[str], None] = print) -> tuple[Splits, keras.Model]:
    """The config, vocabulary and summary written; the data (with the run's own vocabulary on resume)
    and the model (the checkpoint on resume; else masked or not as `plan` says) ready to fit."""
    # Rewritten on resume too: --epochs may have extended the run.
    write_atomic(run_dir / runs.CONFIG, dump_config(config))
    # The initial weights; each epoch's dropout masks are drawn from (seed, epoch) (RunRecorder).
    set_seed(config.train.seed)
    vocabulary = Vocabulary.load(run_dir / runs.VOCABULARY) if resume else None
    splits = load_data(config.data, vocabulary)
    longest = max(int(reviews.lengths.max(initial=0)) for reviews in (splits.train, splits.val, splits.test))
    check_batches_fit(config, len(splits.train), longest)
    if not resume:
        splits.vocabulary.save(run_dir / runs.VOCABULARY)
        write_json(run_dir / runs.CLASSES, {"classes": list(splits.classes)})
        if splits.test_lines is not None:
            write_json(run_dir / runs.SPLIT, {"test_lines": splits.test_lines.tolist()})
    model = restore_or_build(config, run_dir, resume, steps_per_epoch=-(-len(splits.train) // config.train.batch_size),
                             classes=len(splits.classes), masked=plan.masked)
    if config.model.embedding_file and not resume:  # on resume the checkpoint holds the embedding
        found = start_embedding(model, config.model, splits.vocabulary.index)
        runs.RunRecord(run_dir).update(embedding_file=found)
        echo(f"embedding: {found['covered']:,} of the vocabulary's {found['words']:,} words from "
             f"{Path(found['path']).name} ({found['covered'] / max(found['words'], 1):.0%}), "
             + ("trained further" if found["trainable"] else "kept as they are"))
    write_atomic(run_dir / runs.SUMMARY, summary_text(model))
    return splits, model


def record_start(record: runs.RunRecord, config: Config, splits: Splits, model: keras.Model, device: str,
                 history: list[dict], backend: str, plan: backends.Plan, data: DataConfig) -> None:
    """run.json at a (re)start: what runs, where, on which backend and data, with which fast path and
    recurrent kernels."""
    record.update(status="running", device=device, backend=backend, seed=config.train.seed,
                  data={"source": splits.source, "sizes": splits.sizes(), "classes": list(splits.classes)},
                  parameters=model.count_params(), parameters_before_head=parameters_before_head(model),
                  fast_path={"bucketing": config.data.bucketing,
                             "bucket_width": data.bucket_width if config.data.bucketing else None,
                             "jit_compile": bool(model.jit_compile),
                             "steps_per_execution": model.steps_per_execution,
                             "determinism": determinism(config.train, device, backend),
                             "precision": config.train.precision, "batches": plan.batches,
                             "compile_cache": compile_cache_record(model),
                             "xla_flags": os.environ.get("XLA_FLAGS", "") if model.jit_compile else "",
                             "threads": threads()},
                  kernels=plan.kernels,
                  versions=versions(backend), started=record.fields.get("started", timestamp()),
                  timings=start_timings(record.fields.get("timings", {}), splits.load_seconds, history,
                                        config.train))


def compile_cache_record(model: keras.Model) -> str | None:
    """The folder this run's compiled steps are kept in (run.json), if XLA compiles them."""
    folder = compile_cache_folder()
    return str(folder) if model.jit_compile and folder else None


def device_warnings(config: Config, device: str, kernels: dict[str, dict], backend: str = "tensorflow") -> list[str]:
    """What the config costs on this device: LSTM/GRU layers kept off cuDNN, SimpleRNN on PyTorch's GPU,
    mixed precision on a CPU, pooling under TensorFlow's XLA."""
    gpu = kernel_warnings(kernels, backend) if device.startswith("gpu") else []
    return [*gpu, *precision_warnings(config.train, device), *pooling_warnings(config, backend)]


def pooling_warnings(config: Config, backend: str) -> list[str]:
    """A pooled model on TensorFlow with XLA: its last layer keeps every step's output, which XLA's loop
    makes about 3 times slower (docs/performance.md#pooling-and-xla; without XLA TensorFlow is slower still);
    JAX is hardly slowed."""
    if config.model.pooling == "last" or backend != "tensorflow" or not backends.xla(config.train, backend):
        return []
    return [f"warning: model.pooling {config.model.pooling} keeps every step's output, which makes TensorFlow's "
            "steps about 3 times slower, with XLA or without (docs/performance.md#pooling-and-xla); train.backend "
            "jax (the jax extra) trains it about as fast as the last state"]


def start_timings(timings: dict, data_seconds: float, history: list[dict], config: TrainConfig) -> dict:
    """run.json's timings at a (re)start: the data's load time, and the epoch this process starts
    with among `warmup_epochs`, the epochs that include tracing and compiling (rnn compare leaves
    them out of seconds per epoch)."""
    warmup, first = timings.get("warmup_epochs", []), len(history) + 1
    if checkpoints.epochs_left(history, config) and first not in warmup:
        warmup = [*warmup, first]
    return {**timings, "data_seconds": data_seconds, "warmup_epochs": warmup}


def feed_line(config: Config, jit_compile: bool, masked: bool = True) -> str:
    """One line saying how batches are made and compiled, so a slow first epoch is no surprise."""
    data = config.data
    lengths = [str(length) for length in bucket_lengths(data)]
    if len(lengths) > 6:  # one short line whatever maxlen is
        lengths = [*lengths[:3], "...", lengths[-2], f"{lengths[-1]} ({len(lengths)} lengths)"]
    listed = f"{', '.join(lengths[:-1])} and {lengths[-1]}" if len(lengths) > 1 else lengths[0]
    padded = "padding masked" if masked else "left-padded, no mask (for cuDNN)"
    batches = (f"length buckets of {listed} tokens, {padded}"
               if data.bucketing else f"every review padded to {data.maxlen} ({data.padding}), no mask")
    xla = "XLA on: the first epoch includes compiling" if jit_compile else "XLA off"
    return f"batches: {batches}; {xla}"


def batch_data(config: Config, splits: Splits, model: keras.Model) -> DataConfig:
    """config.data with the bucket width training takes: a null one is wider where every training loop of `model`
    skips the padding past a batch's longest review (`encoding.bucket_width`)."""
    longest = max(int(reviews.lengths.max(initial=0)) for reviews in (splits.train, splits.val))
    skips = masks_padding(model) and skips_padding(model, training=True)
    return replace(config.data, bucket_width=bucket_width(config.data, skips, longest))


def fit(model: keras.Model, splits: Splits, config: Config, data: DataConfig, recorder: RunRecorder,
        progress: bool | str | None, callbacks: tuple) -> float:
    """model.fit up to config.train.epochs, if any epoch is left, on batches as `data` (`batch_data`) makes them,
    after a line saying how batches are made and compiled. Returns seconds."""
    history = recorder.history
    masked, bucketed = masks_padding(model), config.data.bucketing
    # The short batch filled up to a full one: one shape fewer to compile (the book's recipe, padded
    # to maxlen, keeps its short batch as it is).
    train_batches = Batches(splits.train, config.train.batch_size, data, masked, seed=config.train.seed,
                            filled=bucketed and averages_over_weights(model), bucketed=bucketed)
    # Validation at the training batch size, as Keras' fit does by default: it reuses the buffers
    # the training step freed instead of raising the peak memory with larger ones. Where the loops skip
    # the padding past each batch's longest review, at one length: one shape to compile instead of each bucket's.
    val_batches = Batches(splits.val, config.train.batch_size, data, masked, bucketed=bucketed,
                          one_length=masked and skips_padding(model))
    bars = progress_callbacks(progress_kind(progress), len(train_batches), config.train.epochs,
                              config.train.batch_size, recorder.echo)
    # With train.ema_momentum, validation scores the averaged weights.
    averaging = [keras.callbacks.SwapEMAWeights()] if keeps_average(model) else []
    started = time.perf_counter()
    if checkpoints.epochs_left(history, config.train):
        recorder.echo(feed_line(replace(config, data=data), bool(model.jit_compile), masked))
        with stops_at_batch_end() as stop:
            model.fit(train_batches.dataset(first_epoch=len(history)), validation_data=val_batches.dataset(),
                      epochs=config.train.epochs, initial_epoch=len(history), shuffle=False, verbose=0,
                      callbacks=[*bars, *averaging, recorder, *callbacks, stop])
    return time.perf_counter() - started


def finish(model: keras.Model, splits: Splits, config: Config, run_dir: Path, recorder: RunRecorder,
           record: runs.RunRecord, train_seconds: float, score_test: bool = True) -> dict:
    """Keep the best epoch's weights when asked, save model.keras, score the test split (unless not
    `score_test`: then the metrics are {})."""
    if config.train.early_stopping.restore_best and (run_dir / runs.BEST_WEIGHTS).exists():
        try:
            model.load_weights(run_dir / runs.BEST_WEIGHTS)
        except Exception as err:  # noqa: BLE001 - h5py reports a damaged file in many ways
            raise runs.damaged(run_dir / runs.BEST_WEIGHTS, f"cannot load the weights: {type(err).__name__}") from None
    else:
        # The last epoch's averaged weights, when kept (fit does this too, unless it had no epoch left).
        model.optimizer.finalize_variable_values(model.trainable_variables)
    save_model(model, run_dir / runs.MODEL)
    started = time.perf_counter()
    metrics = {}
    if score_test:
        # At the training batch size, whose buffers exist already, and without XLA: compiling the forward
        # pass for every bucket shape again costs more memory than it saves time (docs/performance.md).
        with stops_at_batch_end() as stop:  # a Ctrl-C here waits for the end of a batch too
            metrics = evaluate_model(model, splits.test, config.data, batch_size=config.train.batch_size,
                                     callbacks=[stop], classes=splits.classes)
        files.write_json(run_dir / runs.METRICS, metrics)
    plot_curves([(config.name, recorder.history)], run_dir / runs.CURVES, title=f"{config.name}: {run_dir.name}")
    timings = record.fields.get("timings", {})
    record.update(status="finished", finished=timestamp(), epochs_done=len(recorder.history),
                  best_epoch=recorder.best_epoch(), stopped_early=recorder.stopped_early,
                  timings={**timings, "train_seconds": timings.get("train_seconds", 0.0) + train_seconds,
                           "eval_seconds": time.perf_counter() - started})
    write_card(run_dir)
    return metrics


def restore_or_build(config: Config, run_dir: Path, resume: bool, steps_per_epoch: int, classes: int,
                     masked: bool) -> keras.Model:
    """The checkpoint of the last finished epoch on resume, else a fresh compiled model (`masked`:
    whether its embedding masks padding)."""
    checkpoint = run_dir / runs.CHECKPOINT
    if resume and checkpoint.exists():
        return build_training_state(loading.load_keras(checkpoint))
    model = build_model(config.model, config.data.num_words, mask_zero=masked,
                        precision=config.train.precision, classes=classes)
    compile_model(model, config.train, steps_per_epoch)
    return model


def versions(backend: str) -> dict:
    """rnn-cli's, Python's and the libraries' versions: the backend's own (jax and jaxlib, torch, or
    tensorflow), without importing any other."""
    import importlib.metadata

    found = {"rnn_cli": __version__, "python": platform.python_version()}
    for name in {"jax": ("jax", "jaxlib"), "torch": ("torch",)}.get(backend, ("tensorflow",)):
        found[name] = importlib.metadata.version(name)
    return {**found, "keras": keras.__version__, "numpy": np.__version__, "platform": platform.platform()}


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def stderr(line: str) -> None:
    print(line, file=sys.stderr)
