"""rnn train, --resume, eval, predict, explain, inspect and --seeds on every other Keras backend
installed (the jax and torch extras), each in a process of its own that never imports TensorFlow; a
.keras file trained on one backend predicts the same on another."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnn_cli import checkpoints, files, runs
from rnn_cli.predict import predict_texts

OTHERS = [name for name in ("jax", "torch") if importlib.util.find_spec(name)]
# Put first on PYTHONPATH, it makes every `import tensorflow` of the process (and of the processes it
# starts) fail, and writes down who tried: code that catches the ImportError is found out too. Asking
# whether it is installed (importlib.util.find_spec, as PyTorch does) is no import and still answers.
# It writes down too an import of a library Keras only probes for (jax, pandas, sklearn) while Keras loads
# (rnn_cli.process_settings.skip_probed_imports, which comes first where a process calls it, refuses those).
NO_TENSORFLOW = """import importlib.abc, importlib.machinery, os, sys


class Refused(importlib.abc.Loader):
    def create_module(self, spec):
        with open(os.environ["RNN_CLI_TEST_TENSORFLOW_IMPORTS"], "a") as log:
            log.write(f"{os.getpid()} {spec.name}\\n")
        raise ModuleNotFoundError(f"{spec.name} is kept out of this test")

    def exec_module(self, module):
        pass


class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            return importlib.machinery.ModuleSpec(name, Refused())
        return None


class ProbedWhileKerasLoads:
    def find_spec(self, name, path=None, target=None):
        keras = getattr(sys.modules.get("keras"), "__spec__", None)
        caller = sys._getframe(2).f_code.co_name  # an import statement's, not importlib.util.find_spec's
        if (name in ("jax", "pandas", "sklearn") and name != os.environ.get("KERAS_BACKEND")
                and getattr(keras, "_initializing", False) and caller == "_find_and_load_unlocked"):
            with open(os.environ["RNN_CLI_TEST_TENSORFLOW_IMPORTS"], "a") as log:
                log.write(f"{os.getpid()} {name} (while Keras loads)\\n")
        return None


sys.meta_path[:0] = [NoTensorFlow(), ProbedWhileKerasLoads()]
"""
TEXTS = ["a wonderful moving film", "boring and dull", "the plot was great but the actors awful"]


@pytest.fixture(scope="module")
def rnn(tmp_path_factory):
    """`rnn ARGS` in a new process (KERAS_BACKEND=`backend` when given) in which TensorFlow cannot be
    imported, nor in any process it starts (a seed's), and none tried, nor loaded Keras with a library it only
    probes for; its output, checked."""
    folder = tmp_path_factory.mktemp("no-tensorflow")
    (folder / "sitecustomize.py").write_text(NO_TENSORFLOW, encoding="utf-8")
    calls = iter(range(1_000_000))

    def run(*args, backend=None):
        log = folder / f"imports-{next(calls)}.txt"
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")])),
                   RNN_CLI_TEST_TENSORFLOW_IMPORTS=str(log), **({"KERAS_BACKEND": backend} if backend else {}))
        done = subprocess.run([sys.executable, "-m", "rnn_cli.cli", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
        assert not log.exists(), f"rnn {' '.join(map(str, args))} tried to import: {log.read_text()}"
        return done

    return run


def probabilities(done) -> np.ndarray:
    return np.array([json.loads(line)["probability"] for line in done.stdout.splitlines()])


@pytest.fixture(scope="module", params=OTHERS)
def backend_run(request, rnn, tmp_path_factory, tiny_config, imdb_archive):
    """A tiny LSTM run trained on the backend, in a process that cannot import TensorFlow."""
    backend, run_dir = request.param, tmp_path_factory.mktemp(request.param) / "run"
    rnn("train", "--config", tiny_config, "--data", imdb_archive, "--run", run_dir, "--device", "cpu",
        "--set", f"train.backend={backend}", "--set", "model.layers.0.type=lstm")
    return backend, run_dir


def test_a_run_on_the_backend_records_it_never_imports_tensorflow_and_predicts_as_tensorflow_does(backend_run, rnn):
    backend, run_dir = backend_run
    record = files.read_json(run_dir / runs.RUN_RECORD)
    assert record["backend"] == backend and record["status"] == "finished"
    assert "tensorflow" not in record["versions"] and backend in record["versions"]
    assert record["kernels"]["lstm_0"]["kernel"] == "loop"  # masked buckets on the CPU
    assert record["fast_path"]["jit_compile"] is (backend == "jax")
    assert record["fast_path"]["determinism"] == {"jax": "xla", "torch": "torch_deterministic"}[backend]
    assert len(checkpoints.read_history(run_dir)) == 2 and (run_dir / runs.METRICS).exists()
    # Its own backend, from run.json, in every command that loads it; no TensorFlow in any (`rnn`).
    for args in (("eval", "--run", run_dir), ("explain", "--run", run_dir, "a wonderful film"),
                 ("inspect", "--run", run_dir)):
        rnn(*args)
    # Its predictions there are what TensorFlow computes from its model.keras here, in this process.
    there = probabilities(rnn("predict", "--run", run_dir, "--json", *TEXTS))
    here = np.array([row["probability"] for row in predict_texts(run_dir, TEXTS)])
    np.testing.assert_allclose(here, there, atol=1e-5)


def test_the_same_seed_gives_the_same_history_and_a_resumed_run_keeps_its_backend(backend_run, rnn, tiny_config,
                                                                                  imdb_archive, tmp_path):
    backend, run_dir = backend_run
    again = tmp_path / "again"
    rnn("train", "--config", tiny_config, "--data", imdb_archive, "--run", again, "--device", "cpu",
        "--set", "model.layers.0.type=lstm", backend=backend)  # KERAS_BACKEND this time: the config names none
    assert files.read_json(again / runs.RUN_RECORD)["backend"] == backend

    def without_time(folder):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in checkpoints.read_history(folder)]

    assert without_time(again) == without_time(run_dir)
    # Resumed without KERAS_BACKEND: run.json's backend, not TensorFlow (which `rnn` keeps out).
    rnn("train", "--resume", "--run", again, "--epochs", "3", "--device", "cpu")
    assert len(checkpoints.read_history(again)) == 3 and files.read_json(again / runs.RUN_RECORD)["backend"] == backend


def test_a_model_trained_on_tensorflow_predicts_the_same_on_the_backend(backend_run, rnn, trained_run):
    backend, _ = backend_run
    there = rnn("predict", "--run", trained_run, "--json", *TEXTS, backend=backend)
    here = np.array([row["probability"] for row in predict_texts(trained_run, TEXTS)])
    np.testing.assert_allclose(here, probabilities(there), atol=1e-5)


def test_a_seed_group_trains_each_seed_on_the_backend(backend_run, rnn, tiny_config, imdb_archive, tmp_path):
    backend, _ = backend_run
    done = rnn("train", "--config", tiny_config, "--data", imdb_archive, "--run", tmp_path / "group",
               "--device", "cpu", "--seeds", "2", "--epochs", "1", "--set", f"train.backend={backend}")
    assert "2 seeds: test accuracy" in done.stdout  # each seed's own process kept off TensorFlow too
    assert [files.read_json(seed / runs.RUN_RECORD)["backend"] for seed in runs.members(tmp_path / "group")] == [
        backend, backend]
