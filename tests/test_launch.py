"""rnn_cli.launch through `rnn train`: run folders claimed and never overwritten, bad input in one
line before TensorFlow, --quiet, SIGTERM."""

import os
import signal
import subprocess
import sys

import keras
import pytest

from rnn_cli import runs
from tests.conftest import cli_train, invoke


def test_quiet_prints_only_the_result(tmp_path, tiny_config, imdb_archive):
    result = cli_train(tmp_path / "run", tiny_config, imdb_archive, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert result.output.startswith("test accuracy ")


def test_train_never_overwrites_a_run(tmp_path, tiny_config, imdb_archive):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "history.csv").write_text("precious\n")
    result = cli_train(tmp_path / "run", tiny_config, imdb_archive)
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert (tmp_path / "run" / "history.csv").read_text() == "precious\n"


def test_default_run_folder_is_named_after_the_config(tmp_path, tiny_config, imdb_archive, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        result = invoke("train", "--config", tiny_config, "--data", imdb_archive, "--epochs", "1", "-q")
        assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(name.startswith("tiny-") for name in folders)


@pytest.mark.parametrize("seeds", [[], ["--seeds", "2"]], ids=["run", "seed group"])
def test_bad_data_is_one_line_exit_2_and_leaves_no_run(tmp_path, tiny_config, seeds):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    result = cli_train(tmp_path / "run", tiny_config, junk, *seeds)
    assert result.exit_code == 2
    # A seed group meets it in its first seed's own process, and reports it the same way.
    assert "junk.tar.gz: not a readable aclImdb archive" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_bad_config_is_reported_before_tensorflow_loads(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("train: {epochs: 0}\n")
    code = ("import sys\nfrom click.testing import CliRunner\nfrom rnn_cli.cli import main\n"
            f"result = CliRunner().invoke(main, ['train', '--config', {str(config)!r}])\n"
            "print(result.exit_code, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["2", "False"]


def test_resume_refuses_a_new_config(tmp_path, tiny_config):
    result = invoke("train", "--resume", "--run-dir", tmp_path, "--config", tiny_config)
    assert result.exit_code == 2 and "only --epochs may change" in result.output


class TerminateInEpoch2(keras.callbacks.Callback):
    """SIGTERM to this process in epoch 2, as `kill` or a batch system's time limit sends it."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_rnn_train_as_ctrl_c_does(tmp_path, tiny_config, imdb_archive, monkeypatch):
    import rnn_cli.train

    training = rnn_cli.train.train
    monkeypatch.setattr(rnn_cli.train, "train",
                        lambda *args, **kwargs: training(*args, callbacks=(TerminateInEpoch2(),), **kwargs))
    run_dir = tmp_path / "run"
    result = cli_train(run_dir, tiny_config, imdb_archive, "--epochs", "50")
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert f"interrupted: 1 finished epoch(s) kept in {run_dir}" in result.output
    assert runs.read_json(run_dir / "run.json")["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handed back
