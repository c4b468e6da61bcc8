"""What a training prints: a tqdm bar per epoch on a terminal, one line per epoch elsewhere."""

from __future__ import annotations

import sys

import keras
from tqdm import tqdm


def epoch_line(row: dict, epochs: int) -> str:
    """The one-line summary of a finished epoch."""
    return (f"epoch {row['epoch']}/{epochs}  loss {row['loss']:.4f}  acc {row['accuracy']:.4f}  "
            f"val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}  "
            f"{row['seconds']:.1f}s")


class Progress(keras.callbacks.Callback):
    """A bar of batches with running loss and accuracy, when stderr is a terminal.

    Epoch summary lines come from the run recorder, which knows the finished row; this
    callback only draws the bar, so logs that are not a terminal get no bar spam.
    """

    def __init__(self, steps: int, epochs: int, stream=None):
        super().__init__()
        self.steps, self.epochs = steps, epochs
        self.stream = stream or sys.stderr
        self.bar = None

    @staticmethod
    def wanted(stream=None) -> bool:
        stream = stream or sys.stderr
        return hasattr(stream, "isatty") and stream.isatty()

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch",
                        file=self.stream, leave=False, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.bar.update(1)
        if "loss" in logs and batch % 10 == 0:
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
