"""rnn train, eval, predict, explain, inspect and --seeds on every other Keras backend installed (the
jax and torch extras), each in a process of its own that never imports TensorFlow; a .keras file
trained on one backend predicts the same on another."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnn_cli import runs
from rnn_cli.predict import predict_texts

OTHERS = [name for name in ("jax", "torch") if importlib.util.find_spec(name)]
# `rnn` as its console script runs it, then one line on standard error: was TensorFlow imported?
RNN = """import runpy, sys
sys.argv = ["rnn", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("rnn_cli.cli", run_name="__main__")
except SystemExit as stop:
    code = stop.code
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""
TEXTS = ["a wonderful moving film", "boring and dull", "the plot was great but the actors awful"]


def rnn(*args, backend=None):
    """`rnn ARGS` in a new process (KERAS_BACKEND=`backend` when given); its output, checked."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    if backend:
        env["KERAS_BACKEND"] = backend
    done = subprocess.run([sys.executable, "-c", RNN, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def probabilities(done) -> np.ndarray:
    return np.array([json.loads(line)["probability"] for line in done.stdout.splitlines()])


@pytest.fixture(scope="module", params=OTHERS)
def backend_run(request, tmp_path_factory, tiny_config, imdb_archive):
    """A tiny LSTM run trained on the backend, in a process that must not import TensorFlow."""
    backend, run_dir = request.param, tmp_path_factory.mktemp(request.param) / "run"
    done = rnn("train", "--config", tiny_config, "--data", imdb_archive, "--run-dir", run_dir, "--device", "cpu",
               "--set", f"train.backend={backend}", "--set", "model.layers.0.type=lstm")
    assert "tensorflow imported: False" in done.stderr
    return backend, run_dir


def test_a_run_on_the_backend_records_it_and_never_imports_tensorflow(backend_run):
    backend, run_dir = backend_run
    record = runs.read_json(run_dir / runs.RUN_RECORD)
    assert record["backend"] == backend and record["status"] == "finished"
    assert "tensorflow" not in record["versions"] and backend in record["versions"]
    assert record["kernels"]["lstm_0"]["kernel"] == "loop"  # masked buckets on the CPU
    assert record["fast_path"]["jit_compile"] is (backend == "jax")
    assert record["fast_path"]["determinism"] == {"jax": "xla", "torch": "torch_deterministic"}[backend]
    assert len(runs.read_history(run_dir)) == 2 and (run_dir / runs.METRICS).exists()
    # Its own backend, from run.json, in every command that loads it; no TensorFlow in any.
    for args in (("eval", "--run", run_dir), ("predict", "--run", run_dir, *TEXTS),
                 ("explain", "--run", run_dir, "a wonderful film"), ("inspect", "--run", run_dir)):
        done = rnn(*args)
        assert "tensorflow imported: False" in done.stderr, args


def test_the_same_seed_gives_the_same_history_on_the_backend(backend_run, tiny_config, imdb_archive, tmp_path):
    backend, run_dir = backend_run
    rnn("train", "--config", tiny_config, "--data", imdb_archive, "--run-dir", tmp_path / "again", "--device", "cpu",
        "--set", "model.layers.0.type=lstm", backend=backend)  # KERAS_BACKEND this time
    assert runs.read_json(tmp_path / "again" / runs.RUN_RECORD)["backend"] == backend

    def without_time(folder):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in runs.read_history(folder)]

    assert without_time(tmp_path / "again") == without_time(run_dir)


def test_a_model_trained_on_the_backend_predicts_the_same_on_tensorflow(backend_run):
    backend, run_dir = backend_run
    there = probabilities(rnn("predict", "--run", run_dir, "--json", *TEXTS))
    here = np.array([row["probability"] for row in predict_texts(run_dir, TEXTS)])  # this process: TensorFlow
    np.testing.assert_allclose(here, there, atol=1e-5)


def test_a_model_trained_on_tensorflow_predicts_the_same_on_the_backend(backend_run, trained_run):
    backend, _ = backend_run
    there = rnn("predict", "--run", trained_run, "--json", *TEXTS, backend=backend)
    assert "tensorflow imported: False" in there.stderr
    here = np.array([row["probability"] for row in predict_texts(trained_run, TEXTS)])
    np.testing.assert_allclose(here, probabilities(there), atol=1e-5)


def test_a_seed_group_trains_each_seed_on_the_backend(backend_run, tiny_config, imdb_archive, tmp_path):
    backend, _ = backend_run
    done = rnn("train", "--config", tiny_config, "--data", imdb_archive, "--run-dir", tmp_path / "group",
               "--device", "cpu", "--seeds", "2", "--epochs", "1", "--set", f"train.backend={backend}")
    assert "2 seeds: test accuracy" in done.stdout and "tensorflow imported: False" in done.stderr
    assert [runs.read_json(seed / runs.RUN_RECORD)["backend"] for seed in runs.members(tmp_path / "group")] == [
        backend, backend]
