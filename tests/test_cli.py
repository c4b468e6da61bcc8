"""rnn_cli.cli: the last net (one line and a log for an internal error), exit codes, and TensorFlow's
own log lines kept off the terminal."""

import os
import re
import subprocess
import sys

import pytest

from rnn_cli import cli
from rnn_cli.files import cache_dir
from tests.conftest import invoke


def rnn(*args, env=None, **options):
    """`rnn ARGS` as a user runs it: a process of its own, with a terminal's standard error."""
    return subprocess.run([sys.executable, "-m", "rnn_cli.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **options)


def test_an_internal_error_is_one_line_naming_the_log_of_its_traceback(trained_run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something the tool got wrong\nwith a second line")

    monkeypatch.setattr("rnn_cli.predict.predict_texts", broken)
    result = invoke("predict", "--run", trained_run, "good")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: internal error: RuntimeError: something the tool got wrong (the traceback is in ")
    (log,) = (cache_dir() / "logs").glob("error-*.log")
    assert str(log) in line and 'raise RuntimeError("something the tool got wrong' in log.read_text()
    for args in (["--debug", "predict"], ["predict", "--debug"]):  # before or after the command's name
        monkeypatch.setenv(cli.DEBUG, "")  # off, and put back as it was after the test
        with pytest.raises(RuntimeError):
            cli.main([*args, "--run", str(trained_run), "good"], standalone_mode=False)


def test_ctrl_c_in_any_command_exits_130(trained_run, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("rnn_cli.evaluate.evaluate_run", interrupted)
    result = invoke("eval", "--run", trained_run)
    assert result.exit_code == 130 and "interrupted" in result.output and "Aborted" not in result.output


def test_an_error_after_tensorflow_loads_is_still_one_line(trained_run, tmp_path):
    damaged = tmp_path / "run"
    damaged.mkdir()
    for path in trained_run.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    (damaged / "model.keras").write_bytes((damaged / "model.keras").read_bytes()[:1000])
    done = rnn("predict", "--run", damaged, "good")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"Error: {damaged}/model.keras: damaged or not written by rnn train (not a .keras archive: truncated, "
        f"or overwritten); restore it, or train the run again"]
    # TensorFlow's native log lines (glog's "I0000 00:00:..." form: oneDNN, CUDA probing), kept in the log
    assert re.search(r"^[IWE]\d{4} ", (cache_dir() / "logs" / "tensorflow.log").read_text(), re.M)
    for verbose in (rnn("--verbose", "predict", "--run", damaged, "good"),
                    rnn("predict", "--verbose", "--run", damaged, "good")):  # after the command too
        assert verbose.returncode == 2 and len(verbose.stderr.strip().splitlines()) > 1


def test_output_into_a_closed_pipe_ends_quietly(trained_run, tmp_path):
    (tmp_path / "reviews.txt").write_text("a great film\n" * 20_000)  # far more than a pipe holds
    done = subprocess.run(f"{sys.executable} -m rnn_cli.cli predict --run {trained_run} --file "
                          f"{tmp_path / 'reviews.txt'} | head -1", shell=True, capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.split()[1:] == ["positive", "a", "great", "film"]
    assert "internal error" not in done.stderr, done.stderr


def test_a_command_whose_extra_is_missing_says_how_to_install_it(trained_run, monkeypatch, tmp_path):
    import importlib.util

    found = importlib.util.find_spec
    absent = {"uvicorn", "onnxruntime"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in absent else found(name, *a))
    result = invoke("serve", "--run", trained_run)
    assert result.exit_code == 2
    assert result.output == 'Error: this needs uvicorn, which is not installed; pip install "rnn-cli[serve]"\n'
    result = invoke("export", "--run", trained_run, "--format", "onnx", "--out", tmp_path / "unused")
    assert result.exit_code == 2 and 'onnxruntime, which is not installed; pip install "rnn-cli[export]"' in result.output
    assert not (tmp_path / "unused").exists()
