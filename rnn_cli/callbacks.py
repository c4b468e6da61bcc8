"""The Keras callbacks of a training: the run recorder (every epoch committed to the run folder),
the stop at a batch's end for Ctrl-C and SIGTERM, and the progress within an epoch (a bar, or lines)."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from rnn_cli import checkpoints, stopping
from rnn_cli.config import TrainConfig
from rnn_cli.errors import UserError
from rnn_cli.model import averaged_weights, reseed_dropout, save_model

LOGGED = ("loss", "accuracy", "val_loss", "val_accuracy")


@contextlib.contextmanager
def stops_at_batch_end():
    """For a Keras loop (fit, predict): a Ctrl-C or SIGTERM inside the block waits for the end of a
    batch, where the callback this yields raises it (pass it to the loop's callbacks)."""
    with stopping.deferred():
        yield StopOnSignal()


class StopOnSignal(keras.callbacks.Callback):
    """Raises, at the end of a batch, the KeyboardInterrupt of a Ctrl-C or SIGTERM that came during
    fit or the test evaluation (rnn_cli.stopping: raised by the signal itself, it could land inside
    TensorFlow)."""

    def on_train_batch_end(self, batch, logs=None):
        stopping.raise_if_stopped()

    on_test_batch_end = on_predict_batch_end = on_epoch_begin = on_train_batch_end


class RunRecorder(keras.callbacks.Callback):
    """After every epoch: checkpoint, best weights, history files, one printed line, early stop.

    Early stopping is derived from the history itself, so a resumed run stops exactly where an
    uninterrupted one would.
    """

    def __init__(self, run_dir: Path, config: TrainConfig, history: list[dict], echo):
        super().__init__()
        self.run_dir, self.config, self.history, self.echo = run_dir, config, history, echo
        self.stopped_early = False
        self.epoch_started = 0.0

    def best_epoch(self) -> int | None:
        best = checkpoints.best_row(self.history)
        return best["epoch"] if best else None

    def patience_exhausted(self) -> bool:
        return checkpoints.patience_exhausted(self.history, self.config)

    def on_epoch_begin(self, epoch, logs=None):
        reseed_dropout(self.model, self.config.seed, epoch)
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        check_finite(self.model, logs, epoch + 1, self.config)
        learning_rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        row = {"epoch": epoch + 1, **{key: round(float(logs[key]), 6) for key in LOGGED},
               "learning_rate": float(f"{float(learning_rate):.6g}"),
               "seconds": round(time.perf_counter() - self.epoch_started, 3)}
        history = [*self.history, row]
        best = checkpoints.best_row(history)["epoch"] == row["epoch"]

        def save_best(path):
            with averaged_weights(self.model):  # the weights validation scored
                save_model(self.model, path)

        checkpoints.commit_epoch(self.run_dir, history, lambda path: save_model(self.model, path),
                          save_best if best else None)
        self.history.append(row)  # only once committed: a failed commit leaves the epoch unfinished
        self.echo(epoch_line(row, self.config.epochs))
        if self.patience_exhausted():
            self.model.stop_training = True
            self.stopped_early = True
            self.echo(f"early stopping: no better val_accuracy for {self.config.early_stopping.patience} "
                      f"epoch(s); best was epoch {self.best_epoch()}")


def check_finite(model, logs: dict, epoch: int, config: TrainConfig) -> None:
    """A UserError when an epoch's loss or a weight is NaN or infinite (the loss, clipped, can stay finite
    while the weights are not): the weights are lost, and the epochs before it stay as they were committed."""
    bad = [f"{key} {float(logs[key])}" for key in ("loss", "val_loss")
           if key in logs and not math.isfinite(float(logs[key]))]
    if not all(np.isfinite(weights).all() for weights in model.get_weights()):  # about a MB: a millisecond an epoch
        bad.append("weights that are not numbers")
    if bad:
        said = ", ".join(bad)
        raise UserError(f"training diverged in epoch {epoch} ({said}); the {epoch - 1} epoch(s) before it are kept; "
                        f"lower train.learning_rate (now {config.learning_rate:g}) and train again")


def epoch_line(row: dict, epochs: int) -> str:
    """The one-line summary of a finished epoch."""
    return (f"epoch {row['epoch']}/{epochs}  loss {row['loss']:.4f}  acc {row['accuracy']:.4f}  "
            f"val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}  "
            f"{row['seconds']:.1f}s")


# Outside a terminal (a notebook's `!rnn train`, a pipe, a log), seconds between two progress lines in an epoch:
# often enough to see it move, seldom enough to read.
PROGRESS_EVERY = 15.0


def progress_callbacks(kind: str | None, steps: int, epochs: int, batch_size: int, echo) -> list:
    """The callback that shows progress within an epoch as `kind` says (`process.progress_kind`), if any."""
    if kind == "bar":
        return [Progress(steps, epochs)]
    return [ProgressLines(steps, epochs, batch_size, echo)] if kind == "lines" else []


class ProgressLines(keras.callbacks.Callback):
    """Within each epoch, a line every `every` seconds: batches done, reviews per second, running loss and
    accuracy, and the epoch's time left, as Keras' and Hugging Face's logs do where a bar cannot redraw."""

    def __init__(self, steps: int, epochs: int, batch_size: int, echo, every: float | None = None):
        super().__init__()
        self.steps, self.epochs, self.batch_size, self.echo = steps, epochs, batch_size, echo
        self.every = PROGRESS_EVERY if every is None else every
        self.last, self.last_done, self.epoch = None, 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.last = epoch, None

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last of the batches Keras ran in one call (train.steps_per_execution).
        now, done = time.perf_counter(), batch + 1
        if self.last is None:  # the clock starts after the epoch's first call, which waits for its batches to start
            self.last, self.last_done = now, done
            return
        if now - self.last < self.every or done >= self.steps:
            return
        # The pace since the last line: the first epoch's compiling weighs on its first line only.
        per_batch = (now - self.last) / (done - self.last_done)
        self.last, self.last_done = now, done
        logs = logs or {}
        scores = "".join(f"  {name} {float(logs[key]):.4f}" for key, name in (("loss", "loss"), ("accuracy", "acc"))
                         if key in logs)
        self.echo(f"  epoch {self.epoch + 1}/{self.epochs}  batch {done}/{self.steps}  "
                  f"{self.batch_size / per_batch:,.0f} reviews/s{scores}  {per_batch * (self.steps - done):.0f}s left")


class Progress(keras.callbacks.Callback):
    """A bar of batches with running loss and accuracy, when stderr is a terminal.

    Epoch summary lines come from the run recorder, which knows the finished row; this
    callback only draws the bar, so logs that are not a terminal get no bar spam (ProgressLines instead).
    """

    def __init__(self, steps: int, epochs: int, stream=None):
        super().__init__()
        self.steps, self.epochs = steps, epochs
        self.stream = stream or sys.stderr
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch",
                        file=self.stream, leave=False, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        # `batch` is the last of the batches Keras ran in one call (train.steps_per_execution); an epoch's
        # last call may run fewer than it says.
        self.bar.update(min(batch + 1, self.steps) - self.bar.n)
        if "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}",
                                 acc=f"{float(logs.get('accuracy', 0.0)):.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        self.close()

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
