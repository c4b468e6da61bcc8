"""rnn_cli.callbacks: early stopping from the history, one line per epoch in a log, progress lines within an
epoch where no bar can redraw."""

import io
import re

from rnn_cli import callbacks
from rnn_cli.callbacks import RunRecorder
from rnn_cli.config import EarlyStoppingConfig, TrainConfig
from rnn_cli.process_settings import progress_kind
from tests.conftest import cli_train


def test_early_stopping_counts_patience_from_the_history(tmp_path):
    history = [{"epoch": e, "val_accuracy": a} for e, a in enumerate([0.6, 0.8, 0.7, 0.8], start=1)]
    recorder = RunRecorder(tmp_path, TrainConfig(early_stopping=EarlyStoppingConfig(patience=2)),
                           history, print)
    assert recorder.best_epoch() == 2  # ties keep the earlier epoch, as Keras' EarlyStopping does
    assert recorder.patience_exhausted()
    recorder.history = history[:3]
    assert not recorder.patience_exhausted()


def test_output_is_one_line_per_epoch_without_a_terminal(tmp_path, tiny_config, imdb_archive):
    result = cli_train(tmp_path / "run", tiny_config, imdb_archive)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert "batches: length buckets of 40 tokens, padding masked; XLA on" in result.output
    assert lines[-1].startswith("test accuracy ")
    assert "\r" not in result.output  # no progress-bar redraws in a log


def test_without_a_terminal_progress_comes_as_lines_within_each_epoch(tmp_path, tiny_config, imdb_archive,
                                                                       monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    with open(tmp_path / "log", "w") as log:
        assert progress_kind(None, Terminal()) == "bar" and progress_kind(None, log) == "lines"
    assert progress_kind(False) is None and progress_kind("lines") == "lines"
    monkeypatch.setattr(callbacks, "PROGRESS_EVERY", 0.0)  # a line after every batch, for the test
    result = cli_train(tmp_path / "run", tiny_config, imdb_archive,  # CliRunner: no terminal
                       "--set", "train.steps_per_execution=1")  # a callback at every batch's end
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    progress = [line for line in lines if line.startswith("  epoch ")]
    # 160 training reviews in batches of 8: 20 batches; the first starts the clock, the last one's line is
    # the epoch's own.
    pattern = r"  epoch ([12])/2  batch (\d+)/20  [\d,]+ reviews/s  loss \d\.\d{4}  acc \d\.\d{4}  \d+s left"
    assert all(re.fullmatch(pattern, line) for line in progress), progress[:3]
    assert [int(re.fullmatch(pattern, line)[2]) for line in progress] == [*range(2, 20)] * 2
    epoch_lines = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert lines[epoch_lines[0] - 1].startswith("  epoch 1/2  batch 19/20")
    quiet = cli_train(tmp_path / "quiet", tiny_config, imdb_archive, "--quiet")
    assert "  epoch " not in quiet.output


def test_progress_counts_the_batches_keras_ran_in_one_call():
    # train.steps_per_execution 8 over 20 batches: Keras calls back with the last batch of each call, as
    # it would be in a full call (the third call runs batches 16-19 and says 23).
    lines = []
    progress_lines = callbacks.ProgressLines(20, 1, 8, lines.append, every=0.0)
    bar = callbacks.Progress(20, 1, stream=io.StringIO())
    for callback in (progress_lines, bar):
        callback.on_epoch_begin(0)
    for batch in (7, 15):
        for callback in (progress_lines, bar):
            callback.on_train_batch_end(batch, {"loss": 0.5, "accuracy": 0.75})
    assert bar.bar.n == 16
    bar.on_train_batch_end(23, {"loss": 0.5})
    assert bar.bar.n == 20
    assert [re.match(r"  epoch 1/1  batch (\d+)/20 ", line)[1] for line in lines] == ["16"]  # the first call starts the clock
