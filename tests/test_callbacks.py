"""rnn_cli.callbacks: early stopping from the history, one line per epoch in a log."""

from rnn_cli.callbacks import RunRecorder
from rnn_cli.config import EarlyStoppingConfig, TrainConfig
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
