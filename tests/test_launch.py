"""rnn_cli.launch through `rnn train`: run folders claimed and never overwritten, bad input in one
line before TensorFlow, --quiet, SIGTERM."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import keras
import pytest
import yaml

from rnn_cli import checkpoints, files, runs
from rnn_cli.config import dump_config
from tests.conftest import cli_train, invoke, train_quietly


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
    older = invoke("train", "--config", tiny_config, "--data", imdb_archive, "--run-dir", tmp_path / "run")
    assert older.exit_code == 2 and f"--run {tmp_path / 'run'}: already exists" in older.output  # one option, two names


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
    assert "Traceback" not in result.output and "run folder" not in result.output and "seed 42" not in result.output
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
    result = invoke("train", "--resume", "--run", tmp_path, "--config", tiny_config)
    assert result.exit_code == 2 and "only --epochs may change" in result.output


class TerminateInEpoch2(keras.callbacks.Callback):
    """SIGTERM to this process in epoch 2, as `kill` or a batch system's time limit sends it."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_rnn_train_as_ctrl_c_does(tmp_path, tiny_config, imdb_archive, monkeypatch):
    import rnn_cli.training

    training = rnn_cli.training.train
    monkeypatch.setattr(rnn_cli.training, "train",
                        lambda *args, **kwargs: training(*args, callbacks=(TerminateInEpoch2(),), **kwargs))
    run_dir = tmp_path / "run"
    result = cli_train(run_dir, tiny_config, imdb_archive, "--epochs", "50")
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert f"interrupted: 1 finished epoch(s) kept in {run_dir}" in result.output
    assert files.read_json(run_dir / "run.json")["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handed back


def started_train(tmp_path, tiny_config, imdb_archive, *extra):
    """`rnn train` in a process of its own, once it has claimed its run folder (its lock file is there)."""
    process = subprocess.Popen([sys.executable, "-m", "rnn_cli.cli", "train", "--config", str(tiny_config),
                                "--data", str(imdb_archive), "--run", str(tmp_path / "run"),
                                "--device", "cpu", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "run" / runs.LOCK
    for _ in range(600):
        if lock.exists() and lock.read_text().strip() == str(process.pid):
            return process
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("rnn train did not claim its run folder in 30 s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_tensorflow_loads_exits_with_its_code_and_leaves_no_folder(tmp_path, tiny_config,
                                                                                  imdb_archive, signum):
    process = started_train(tmp_path, tiny_config, imdb_archive)
    process.send_signal(signum)  # TensorFlow's import takes seconds: this lands in it
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted before the first epoch finished: nothing kept"
    assert not (tmp_path / "run").exists()


def test_a_second_train_in_a_folder_in_use_names_the_process_that_holds_it(tmp_path, tiny_config, imdb_archive):
    first = started_train(tmp_path, tiny_config, imdb_archive, "--epochs", "50")
    try:
        for options in ([], ["--resume"]):
            args = ["--config", tiny_config, "--data", imdb_archive] if not options else []
            second = invoke("train", *args, "--run", tmp_path / "run", "--device", "cpu", *options)
            assert second.exit_code == 2, second.output
            assert f"run: in use by process {first.pid} (another rnn train)" in second.output
        assert (tmp_path / "run" / runs.LOCK).read_text().strip() == str(first.pid)  # still the first's
    finally:
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 143 and not (tmp_path / "run" / runs.LOCK).exists(), stderr  # given up at its end


def test_a_run_with_no_finished_epoch_resumes_from_the_start(tmp_path, tiny_config, imdb_archive):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = yaml.safe_load(open(tiny_config))
    config["data"] |= {"source": "aclimdb", "path": str(imdb_archive)}
    (run_dir / runs.CONFIG).write_text(yaml.safe_dump(config))  # as a run killed before its first epoch
    result = invoke("train", "--resume", "--run", run_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert [row["epoch"] for row in checkpoints.read_history(run_dir)] == [1, 2]


def test_a_failure_before_the_first_epoch_leaves_no_folder(tmp_path, tiny_config, imdb_archive, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 4.00 GiB")

    monkeypatch.setattr("rnn_cli.training.load_data", out_of_memory)
    result = cli_train(tmp_path / "run", tiny_config, imdb_archive)
    assert result.exit_code == 1 and "internal error: MemoryError: Unable to allocate" in result.output
    assert not (tmp_path / "run").exists() and "run folder" not in result.output  # never named, then removed


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a file system of its own that `fill` makes full (root: a tmpfs), or, without
    root, read-only; `free` undoes it."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                                                   capture_output=True).returncode == 0

    class Disk:
        path = folder

        def fill(self):
            if mounted:
                with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:
                    while True:  # until the disk is full (it may be already)
                        filler.write(b"\0" * 65536)
                        filler.flush()
            else:
                os.chmod(folder / "run", 0o555)

        def free(self):
            (folder / "filler").unlink(missing_ok=True)
            os.chmod(folder / "run", 0o755)

    yield Disk()
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)


class FillTheDiskAfterEpoch1(keras.callbacks.Callback):
    def __init__(self, disk):
        super().__init__()
        self.disk = disk

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:  # epoch 1 is committed (the run recorder comes first)
            self.disk.fill()


def test_a_full_disk_is_one_line_and_the_run_resumes_exactly_once_freed(tmp_path, tiny, small_disk, monkeypatch):
    import rnn_cli.training

    config = tiny("train.epochs=3", "model.layers.0.dropout=0.3")
    whole = train_quietly(config, tmp_path / "whole").history
    training = rnn_cli.training.train
    with monkeypatch.context() as patch:
        patch.setattr(rnn_cli.training, "train", lambda *args, **kwargs: training(
            *args, callbacks=(FillTheDiskAfterEpoch1(small_disk),), **kwargs))
        run_dir = small_disk.path / "run"
        (run_dir / runs.CONFIG).parent.mkdir()
        (run_dir / runs.CONFIG).write_text(dump_config(config))
        result = invoke("train", "--resume", "--run", run_dir, "--device", "cpu")
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert f"{run_dir}/" in line and "cannot write (" in line and "1 finished epoch(s) kept" in line
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary file left
    small_disk.free()
    result = invoke("train", "--resume", "--run", run_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in checkpoints.read_history(run_dir)] == [
        {k: v for k, v in row.items() if k != "seconds"} for row in whole]


def test_eval_prints_its_metrics_even_where_it_cannot_save_them(trained_run, small_disk):
    run_dir = small_disk.path / "run"
    run_dir.mkdir()
    for path in trained_run.iterdir():
        (run_dir / path.name).write_bytes(path.read_bytes())
    (run_dir / "eval.json").unlink(missing_ok=True)
    small_disk.fill()
    result = invoke("eval", "--run", run_dir)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and f"warning: not saved: {run_dir}/eval.json: cannot write" in (
        result.output)
    assert not (run_dir / "eval.json").exists()
