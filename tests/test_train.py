"""rnn_cli.training: the run folder's files, repeatable training, resume, the test evaluation, the
fast path's decisions (on by default, the book recipe on request, GPU choices)."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from tensorflow.python.framework import config as tf_config

from rnn_cli import backends, checkpoints, files, runs, stopping
from rnn_cli import training as train_module
from rnn_cli.config import load_config
from rnn_cli.data import load_data
from rnn_cli.errors import UserError
from rnn_cli.inference import predict_probabilities
from rnn_cli.metrics import classification_metrics
from rnn_cli.model import THRESHOLD
from tests.conftest import cli_train, invoke, topic_rows, train_quietly, write_class_folders, write_table

RUN_FILES = {"config.yaml", "history.csv", "history.json", "model.keras", "checkpoint.keras", "curves.png",
             "vocab.json", "summary.txt", "run.json", "metrics.json"}


def test_train_writes_every_run_file(trained_run, imdb_archive):
    assert RUN_FILES <= {p.name for p in trained_run.iterdir()}
    assert not [p for p in trained_run.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    mask = os.umask(0)
    os.umask(mask)
    assert {p.stat().st_mode & 0o777 for p in trained_run.iterdir()} == {0o666 & ~mask}
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["train"]["epochs"] == 3 and config["data"]["source"] == "aclimdb"
    assert config["data"]["path"] == str(imdb_archive.resolve())

    rows = list(csv.DictReader((trained_run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == list(checkpoints.HISTORY_COLUMNS)
    history = files.read_json(trained_run / "history.json")
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert all(0 <= row["val_accuracy"] <= 1 and row["seconds"] > 0 for row in history)
    assert history[0]["learning_rate"] == pytest.approx(0.01)

    record = files.read_json(trained_run / "run.json")
    assert record["status"] == "finished" and record["device"] == "cpu" and record["seed"] == 42
    assert record["data"]["sizes"] == {"train": 160, "val": 40, "test": 50, "vocabulary": 25, "skipped": 0}
    assert {"tensorflow", "keras", "python"} <= set(record["versions"])
    assert record["timings"]["train_seconds"] > 0 and record["epochs_done"] == 3

    metrics = files.read_json(trained_run / "metrics.json")
    assert metrics["reviews"] == 50 and 0 <= metrics["accuracy"] <= 1
    assert "Parameters before the Dense head" in (trained_run / "summary.txt").read_text()
    # Every word of the tiny data fits under num_words 40.
    assert len(files.read_json(trained_run / "vocab.json")["words"]) == 22


def test_tiny_model_learns_the_signal(trained_run):
    metrics = files.read_json(trained_run / "metrics.json")
    assert metrics["accuracy"] >= 0.75, metrics


def test_same_seed_gives_the_same_history_whatever_the_batches_per_call(tmp_path, tiny_config, imdb_archive):
    # TensorFlow runs 2 batches per call of its compiled loop by default, one by one here: the same steps.
    histories = []
    for name, settings in (("a", ()), ("b", ("--set", "train.steps_per_execution=1"))):
        assert cli_train(tmp_path / name, tiny_config, imdb_archive, *settings).exit_code == 0
        rows = checkpoints.read_history(tmp_path / name)
        histories.append([{k: v for k, v in row.items() if k != "seconds"} for row in rows])
    assert [files.read_json(tmp_path / name / "run.json")["fast_path"]["steps_per_execution"]
            for name in "ab"] == [backends.STEPS_PER_EXECUTION, 1]
    assert len(histories[0]) == 2 and histories[0] == histories[1]
    result = cli_train(tmp_path / "c", tiny_config, imdb_archive, "--set", "train.seed=7")
    assert result.exit_code == 0
    other = [{k: v for k, v in row.items() if k != "seconds"} for row in checkpoints.read_history(tmp_path / "c")]
    assert other != histories[0]


def test_a_second_process_loads_the_steps_the_first_compiled_with_the_same_history(tmp_path, tiny_config,
                                                                                  imdb_archive):
    env = {k: v for k, v in os.environ.items() if k != "TF_XLA_FLAGS"}  # this process' own cache folder
    env.update(RNN_CLI_COMPILE_CACHE=str(tmp_path / "compiled"))
    entries = []
    for name in ("a", "b"):
        done = subprocess.run([sys.executable, "-m", "rnn_cli.cli", "train", "--config", str(tiny_config), "--data",
                               str(imdb_archive), "--run", str(tmp_path / name), "--device", "cpu", "--epochs", "1"],
                              capture_output=True, text=True, env=env, timeout=240)
        assert done.returncode == 0, done.stderr
        fast_path = files.read_json(tmp_path / name / "run.json")["fast_path"]
        folder = Path(fast_path["compile_cache"])
        assert folder.parent == tmp_path / "compiled" and fast_path["threads"] == 1  # a tiny model's step
        entries.append({p.name: p.stat().st_mtime_ns for p in folder.iterdir()})
    assert entries[0] and entries[1] == entries[0]  # the second process compiled nothing of its own

    def without_time(folder):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in checkpoints.read_history(folder)]

    assert without_time(tmp_path / "b") == without_time(tmp_path / "a")


class InterruptInEpoch(keras.callbacks.Callback):
    """Ctrl-C in the middle of an epoch, as a user would press it."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch >= 1:  # the end of a call of Keras' loop past the first batch
            raise KeyboardInterrupt


def test_interrupted_run_keeps_its_epochs_and_resumes(tmp_path, tiny):
    run_dir = tmp_path / "run"
    config = tiny("train.epochs=4")
    with pytest.raises(KeyboardInterrupt):
        train_quietly(config, run_dir, callbacks=(InterruptInEpoch(2),))
    assert [row["epoch"] for row in checkpoints.read_history(run_dir)] == [1, 2]
    assert files.read_json(run_dir / "run.json")["status"] == "interrupted"
    assert keras.saving.load_model(run_dir / "checkpoint.keras").optimizer.iterations.numpy() == 2 * 20
    before = checkpoints.read_history(run_dir)

    result = invoke("train", "--resume", "--run", run_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    history = checkpoints.read_history(run_dir)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[:2] == before  # finished epochs are kept as they were
    assert "epoch 3/4" in result.output and "epoch 1/4" not in result.output
    # Optimizer state went on from the checkpoint: 20 steps an epoch (160 reviews, batch 8).
    assert keras.saving.load_model(run_dir / "checkpoint.keras").optimizer.iterations.numpy() == 4 * 20
    assert files.read_json(run_dir / "run.json")["status"] == "finished"

    more = invoke("train", "--resume", "--run", run_dir, "--epochs", "5", "--device", "cpu")
    assert more.exit_code == 0, more.output
    assert [row["epoch"] for row in checkpoints.read_history(run_dir)] == [1, 2, 3, 4, 5]
    assert load_config(run_dir / "config.yaml").train.epochs == 5


class PoisonInEpoch(keras.callbacks.Callback):
    """The weights turn NaN at the start of an epoch, as a too-large step leaves them."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            embedding = next(layer for layer in self.model.layers if isinstance(layer, keras.layers.Embedding))
            embedding.embeddings.assign(np.full(embedding.embeddings.shape, np.nan, dtype="float32"))


def test_a_diverging_training_stops_in_one_line_and_keeps_the_epochs_before(tmp_path, tiny, tiny_config,
                                                                            imdb_archive):
    run_dir = tmp_path / "run"
    with pytest.raises(UserError, match=r"training diverged in epoch 2 \(loss nan.*the 1 epoch\(s\) before it are kept"):
        train_quietly(tiny("train.epochs=3"), run_dir, callbacks=(PoisonInEpoch(1),))
    assert [row["epoch"] for row in checkpoints.read_history(run_dir)] == [1]
    assert files.read_json(run_dir / "run.json")["status"] == "failed"
    # Far too large a step: weights so large that the outputs overflow, while the clipped loss stays finite.
    for rate in ("1e30", "1.0e+30"):
        result = cli_train(tmp_path / rate, tiny_config, imdb_archive, "--set", "train.optimizer=sgd",
                           "--set", f"train.learning_rate={rate}", "--epochs", "2")
        assert result.exit_code == 2, result.output
        last = result.output.splitlines()[-1]
        assert "diverged" in last and "Traceback" not in result.output
        # Where it shows (the weights in epoch 1 or 2, or only the outputs at the test evaluation) varies
        # with the threads' summation order; what the line says is kept must be what is there.
        kept = re.search(r"the (\d+) epoch\(s\) before it are kept", last)
        kept = int(kept.group(1)) if kept else 2
        if kept == 0:
            assert not (tmp_path / rate).exists()
        else:
            assert files.read_json(tmp_path / rate / "run.json")["status"] == "failed"
            assert len(checkpoints.read_history(tmp_path / rate)) == kept


def test_ctrl_c_in_the_test_evaluation_keeps_the_run_resumable(tmp_path, tiny, monkeypatch):
    import rnn_cli.training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    config = tiny()
    with monkeypatch.context() as patch:
        patch.setattr(rnn_cli.training, "evaluate_model", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train_quietly(config, run_dir)
    assert files.read_json(run_dir / "run.json")["status"] == "interrupted"
    assert not (run_dir / "metrics.json").exists()

    result = invoke("train", "--resume", "--run", run_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    # Every epoch was done: only the evaluation is left (no epoch lines, nor the line about compiling).
    assert not any(line.startswith(("epoch ", "batches: ")) for line in result.output.splitlines())
    assert len(checkpoints.read_history(run_dir)) == 2 and (run_dir / "metrics.json").exists()
    assert files.read_json(run_dir / "run.json")["status"] == "finished"


def test_a_signal_in_the_test_evaluation_waits_for_the_end_of_a_batch(tmp_path, tiny,
                                                                       monkeypatch):
    import rnn_cli.training

    seen = []

    class SignalInFirstBatch(keras.callbacks.Callback):
        def on_predict_batch_begin(self, batch, logs=None):
            seen.append(batch)
            if batch == 0:
                signal.raise_signal(signal.SIGINT)
                seen.append("went on")  # not raised here, inside Keras' loop, but at the batch's end

    scored = rnn_cli.training.evaluate_model

    def evaluate(*args, callbacks=(), **kwargs):
        return scored(*args, callbacks=[SignalInFirstBatch(), *callbacks], **kwargs)

    monkeypatch.setattr(rnn_cli.training, "evaluate_model", evaluate)
    run_dir = tmp_path / "run"
    config = tiny("train.epochs=1")
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals():
        train_quietly(config, run_dir)
    assert seen == [0, "went on"]
    assert files.read_json(run_dir / "run.json")["status"] == "interrupted"
    assert not (run_dir / "metrics.json").exists() and len(checkpoints.read_history(run_dir)) == 1


def test_a_checkpoint_from_before_the_filled_short_batch_resumes_unfilled(tmp_path, tiny,
                                                                         monkeypatch):
    """Its loss averages over rows: zero-weight copies would change its steps, so none are added."""
    import rnn_cli.model
    import rnn_cli.training

    run_dir = tmp_path / "run"
    config = tiny("train.epochs=1")
    with monkeypatch.context() as patch:
        patch.setattr(rnn_cli.model, "LOSS_REDUCTION", "sum_over_batch_size")  # the loss of earlier versions
        train_quietly(config, run_dir)
    filled, made = [], rnn_cli.training.Batches

    def batches(*args, **kwargs):
        filled.append(kwargs.get("filled", False))
        return made(*args, **kwargs)

    monkeypatch.setattr(rnn_cli.training, "Batches", batches)
    result = invoke("train", "--resume", "--run", run_dir, "--epochs", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert filled[0] is False and len(checkpoints.read_history(run_dir)) == 2  # filled[0]: the training batches


def test_restore_best_saves_the_best_epoch_as_the_model(tmp_path, tiny_config, imdb_archive):
    result = cli_train(tmp_path / "run", tiny_config, imdb_archive, "--epochs", "4",
                        "--set", "train.early_stopping.restore_best=true", "--set", "train.learning_rate=0.05")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "run"
    history = checkpoints.read_history(run_dir)
    best = max(history, key=lambda r: (r["val_accuracy"], -r["epoch"]))
    assert files.read_json(run_dir / "run.json")["best_epoch"] == best["epoch"]
    model = keras.saving.load_model(run_dir / "model.keras")
    last = keras.saving.load_model(run_dir / "checkpoint.keras")
    model_weights = [w.numpy() for w in model.weights]
    model.load_weights(run_dir / "best.weights.h5")
    assert all((a == b.numpy()).all() for a, b in zip(model_weights, model.weights))
    differs = any((a != b.numpy()).any() for a, b in zip(model_weights, last.weights))
    assert differs == (best["epoch"] != len(history))


def train_whole_and_resumed(config, parent):
    """Train `config` into parent/full in one go, and into parent/resumed stopped after epoch 2
    (as by Ctrl-C) and resumed."""

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    train_quietly(config, parent / "full")
    with pytest.raises(KeyboardInterrupt):
        train_quietly(config, parent / "resumed", callbacks=(StopAfterTwo(),))
    train_quietly(config, parent / "resumed", resume=True)


def history_without_time(run_dir):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in checkpoints.read_history(run_dir)]


# Two trainings of the tiny config in one process whose XLA_FLAGS name the emitters (read once a process).
UNDER_EMITTERS = """\
import json, sys
from pathlib import Path
from rnn_cli.config import load_config
from tests.conftest import train_quietly
from tests.test_train import history_without_time
config = load_config(sys.argv[1], ["data.source=aclimdb", "data.path=" + sys.argv[2]])
Path(sys.argv[3]).mkdir()
for name in ("a", "b"):
    train_quietly(config, Path(sys.argv[3]) / name)
print(json.dumps([history_without_time(Path(sys.argv[3]) / name) for name in ("a", "b")]))
"""


def test_xlas_two_emitters_give_one_history_and_repeat_it(tmp_path, tiny_config, imdb_archive):
    # The shipped SimpleRNN trains under the fusion emitters, the tests' tiny models under the classic ones
    # (rnn_cli.process_settings.choose_emitters): both repeat a seed's history, and it is the same history.
    processes = {emitters: subprocess.Popen(
        [sys.executable, "-c", UNDER_EMITTERS, str(tiny_config), str(imdb_archive), str(tmp_path / emitters)],
        env={**os.environ, "XLA_FLAGS": f"--xla_cpu_use_fusion_emitters={emitters}"}, cwd=Path(__file__).parent.parent,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for emitters in ("true", "false")}
    histories = {}
    for emitters, process in processes.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        histories[emitters] = json.loads(out.strip().splitlines()[-1])
        assert files.read_json(tmp_path / emitters / "a" / "run.json")["fast_path"]["xla_flags"].endswith(emitters)
    for runs_of_one in histories.values():
        assert runs_of_one[0] == runs_of_one[1] and len(runs_of_one[0]) == 2
    assert histories["true"][0] == histories["false"][0]


def test_fast_path_is_the_default(trained_run):
    record = files.read_json(trained_run / "run.json")
    fast_path = dict(record["fast_path"])
    # Where compiled steps are kept (the session's folder), and the threads: 1 unless TensorFlow had
    # started in this test process before the run (test_process_settings.py checks both in processes of their own).
    assert Path(fast_path.pop("compile_cache")).parent == Path(os.environ["RNN_CLI_COMPILE_CACHE"])
    assert fast_path.pop("threads") in (1, None)
    assert "--xla_cpu_use_fusion_emitters=" in fast_path.pop("xla_flags")  # the process' XLA emitters, chosen once
    assert fast_path == {"bucketing": True, "bucket_width": 128, "jit_compile": True, "determinism": "xla",
                         "steps_per_execution": 2,
                         "precision": "float32", "batches": "length buckets, right-padded and masked"}
    assert record["backend"] == "tensorflow"
    assert record["kernels"] == {"simple_rnn_0": {"kernel": "loop", "why": "SimpleRNN has no fused kernel on any backend; "
                                                                  "its inputs are projected before the loop; its "
                                                                  "gradient in training is written out"}}
    model = keras.saving.load_model(trained_run / "model.keras")
    assert model.get_layer("embedding").mask_zero


def test_validation_is_fed_at_one_length_where_the_loops_skip_padding(tmp_path, tiny, monkeypatch):
    """rnn train validates at one length (`projected.skips_padding`), training keeps its buckets."""
    from rnn_cli.batches import Batches

    lengths, batch = {"train": set(), "val": set()}, Batches.batch
    monkeypatch.setattr(Batches, "batch", lambda self, index: lengths["val" if self.seed is None else "train"].add(
        self.length(index)) or batch(self, index))
    train_quietly(tiny("data.bucket_width=8", "train.epochs=1"), tmp_path / "run", score_test=False)
    assert len(lengths["train"]) > 1 and len(lengths["val"]) == 1


@pytest.mark.parametrize("kind", ["lstm", "simple_rnn"])
def test_a_null_bucket_width_gives_an_lstm_two_lengths_and_simple_rnn_128(tmp_path, tiny, monkeypatch, kind):
    """Every LSTM or GRU loop skips the padding past a batch's longest review, so wider buckets cost it little: half
    the longest review (36 tokens here, under maxlen 40); SimpleRNN's training loop runs every step: 128, capped at
    maxlen."""
    from rnn_cli.batches import Batches

    lengths, batch = set(), Batches.batch

    def training_batch(self, index):
        if self.seed is not None:  # training's, not validation's
            lengths.add(self.length(index))
        return batch(self, index)

    monkeypatch.setattr(Batches, "batch", training_batch)
    lines = []
    train_quietly(tiny(f"model.layers=[{{type: {kind}, units: 4}}]", "train.epochs=1"), tmp_path / "run",
                  score_test=False, echo=lines.append)
    buckets = [18, 36] if kind == "lstm" else [40]
    assert sorted(lengths) == buckets
    assert f"length buckets of {', '.join(map(str, buckets))}{' and 40' if kind == 'lstm' else ''} tokens" in lines[0]
    assert files.read_json(tmp_path / "run" / "run.json")["fast_path"]["bucket_width"] == (18 if kind == "lstm" else 128)


def test_an_lstm_trains_the_same_history_whatever_the_bucket_width(tmp_path, tiny):
    """Its loop skips the padding past each batch's longest review, so a null width's wider buckets change nothing
    computed (the null default's premise)."""
    for width in ("8", "null"):
        train_quietly(tiny("model.layers=[{type: lstm, units: 4, dropout: 0.2}]", f"data.bucket_width={width}"),
                      tmp_path / width, score_test=False)
    assert history_without_time(tmp_path / "8") == history_without_time(tmp_path / "null")


def test_book_recipe_is_one_setting_away_and_repeatable(tmp_path, tiny):
    config = tiny("data.bucketing=false", "train.jit_compile=false")
    for name in ("a", "b"):
        train_quietly(config, tmp_path / name)
    assert history_without_time(tmp_path / "a") == history_without_time(tmp_path / "b")
    fast_path = dict(files.read_json(tmp_path / "a" / "run.json")["fast_path"])
    fast_path.pop("threads")  # the process' (test_fast_path_is_the_default)
    # Without XLA, same seed needs TF's op determinism (which in turn keeps Keras off XLA); nothing compiled.
    assert fast_path == {"bucketing": False, "bucket_width": None, "jit_compile": False, "determinism": "op_determinism",
                         "steps_per_execution": 2,
                         "precision": "float32", "batches": "padded to maxlen, no mask", "compile_cache": None,
                         "xla_flags": ""}
    assert not keras.saving.load_model(tmp_path / "a" / "model.keras").get_layer("embedding").mask_zero


def test_xla_run_after_a_recipe_run_in_one_process_keeps_xla(tmp_path, tiny, monkeypatch):
    evaluated = []  # the test evaluation runs at the training batch size (without XLA, always)
    evaluate = train_module.evaluate_model
    monkeypatch.setattr(train_module, "evaluate_model", lambda *args, **options: (
        evaluated.append(options) or evaluate(*args, **options)))
    validation_sizes = []  # batches without a shuffling seed: validation
    real_batches = train_module.Batches

    filled = []  # training batches: is the short one filled up to a full one?

    def batches(reviews, batch_size, *args, seed=None, **options):
        if seed is None:
            validation_sizes.append(batch_size)
        else:
            filled.append(options.get("filled", False))
        return real_batches(reviews, batch_size, *args, seed=seed, **options)

    monkeypatch.setattr(train_module, "Batches", batches)
    train_quietly(tiny("train.jit_compile=false", "data.bucketing=false", "train.epochs=1"), tmp_path / "recipe")
    train_quietly(tiny("train.epochs=1"), tmp_path / "fast")
    record = files.read_json(tmp_path / "fast" / "run.json")
    assert record["fast_path"]["jit_compile"] is True
    assert not tf_config.is_op_determinism_enabled()
    assert [options["batch_size"] for options in evaluated] == [8, 8]
    assert validation_sizes == [8, 8]  # validation too: no larger buffers than training's
    assert filled == [False, True]  # the recipe keeps its short batch; the fast path fills it


def test_pooling_under_tensorflows_xla_is_warned_about(tiny):
    (warning,) = train_module.device_warnings(tiny("model.pooling=max"), "cpu", {}, "tensorflow")
    assert "model.pooling max keeps every step's output" in warning and "train.backend jax" in warning
    assert train_module.device_warnings(tiny("model.pooling=max", "train.jit_compile=false"), "cpu", {}) == []
    assert train_module.device_warnings(tiny("model.pooling=max"), "cpu", {}, "jax") == []
    assert train_module.device_warnings(tiny(), "cpu", {}, "tensorflow") == []


def test_gpu_run_records_cudnn_and_warns_when_the_config_disables_it(tmp_path, tiny,
                                                                      monkeypatch):
    """The GPU decisions, taken on CPU: the device is only a name to them."""
    monkeypatch.setattr("rnn_cli.training.select_device", lambda wanted, backend: "gpu:0 (simulated)")
    config = tiny("train.epochs=1", "model.layers.0.type=lstm",
                  "model.layers.0.recurrent_dropout=0.2")
    warnings = []
    (tmp_path / "run").mkdir()
    train_module.train(config, tmp_path / "run", device="gpu", echo=lambda line: None, warn=warnings.append)
    assert len(warnings) == 1 and "lstm_0 will not use cuDNN" in warnings[0]
    record = files.read_json(tmp_path / "run" / "run.json")
    assert record["kernels"] == {"lstm_0": {"kernel": "loop", "why": "recurrent_dropout 0.2: the fused kernels need 0"}}
    assert record["fast_path"]["determinism"] is None  # op determinism would refuse cuDNN


def test_a_gpu_run_on_jax_or_torch_trains_on_left_padded_buckets_for_cudnn(tmp_path, tiny, monkeypatch):
    """The decision for JAX and PyTorch on a GPU, taken and carried out here: the backend and the
    device are only names to it (the arithmetic is this process' TensorFlow on the CPU)."""
    monkeypatch.setattr("rnn_cli.training.select_device", lambda wanted, backend: "gpu:0 (simulated)")
    monkeypatch.setattr("rnn_cli.training.current_backend", lambda: "jax")
    config = tiny("train.epochs=1", "model.layers.0.type=lstm")
    (tmp_path / "run").mkdir()
    lines = []
    train_module.train(config, tmp_path / "run", device="gpu", echo=lines.append, warn=lines.append)
    record = files.read_json(tmp_path / "run" / "run.json")
    assert record["backend"] == "jax" and record["fast_path"]["batches"] == "length buckets, left-padded, no mask"
    assert record["kernels"] == {"lstm_0": {"kernel": "cudnn", "why": "batches without a mask, left-padded buckets"}}
    assert "left-padded, no mask (for cuDNN)" in lines[0]
    assert not keras.saving.load_model(tmp_path / "run" / "model.keras").get_layer("embedding").mask_zero
    # Scored as trained: each review at its own bucket, on the left (tests/test_inference.py).
    result = invoke("eval", "--run", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == pytest.approx(files.read_json(tmp_path / "run" / "metrics.json")["accuracy"])
    result = invoke("export", "--run", tmp_path / "run")
    assert result.exit_code == 2 and "trained on left-padded length buckets" in result.output


def test_cosine_schedule_lowers_the_rate_every_epoch_and_resumes_on_it(tmp_path, tiny):
    config = tiny("train.schedule=cosine", "train.epochs=3")
    train_whole_and_resumed(config, tmp_path)
    rates = [row["learning_rate"] for row in checkpoints.read_history(tmp_path / "full")]
    assert rates[0] < 0.01 and rates[0] > rates[1] > rates[2] >= 0  # 0.01 is the tiny config's rate
    assert [row["learning_rate"] for row in checkpoints.read_history(tmp_path / "resumed")] == rates
    # Each process' first epoch traces and compiles: run.json names them for rnn compare.
    warmups = {name: files.read_json(tmp_path / name / runs.RUN_RECORD)["timings"]["warmup_epochs"]
               for name in ("full", "resumed")}
    assert warmups == {"full": [1], "resumed": [1, 3]}


def test_weight_averaging_is_what_validation_scores_and_what_is_saved(tmp_path, tiny):
    config = tiny("train.ema_momentum=0.9", "train.epochs=3",
                  "train.early_stopping.restore_best=false")
    train_whole_and_resumed(config, tmp_path)
    val = load_data(config.data).val
    for run_dir in (tmp_path / "full", tmp_path / "resumed"):
        saved = keras.saving.load_model(run_dir / "model.keras")
        checkpoint = keras.saving.load_model(run_dir / "checkpoint.keras")
        raw = checkpoint.get_weights()  # training goes on from the weights themselves
        checkpoint.optimizer.finalize_variable_values(checkpoint.trainable_variables)
        for averaged, kept in zip(checkpoint.get_weights(), saved.get_weights()):
            np.testing.assert_array_equal(kept, averaged)  # the saved model is the average...
        assert any(not np.allclose(a, b) for a, b in zip(raw, saved.get_weights()))  # ...not the last step
        # Validation scored the averaged weights: those saved for the last epoch and the best one.
        history = checkpoints.read_history(run_dir)
        best = keras.saving.load_model(run_dir / "model.keras")
        best.load_weights(run_dir / "best.weights.h5")
        for model, row in ((saved, history[-1]), (best, checkpoints.best_row(history))):
            loss = classification_metrics(val.labels, predict_probabilities(model, val, config.data), THRESHOLD)["loss"]
            assert loss == pytest.approx(row["val_loss"], abs=2e-6)
    # The average went on from the checkpoint: a resumed run ends where an uninterrupted one does.
    assert history_without_time(tmp_path / "resumed") == history_without_time(tmp_path / "full")


def test_mixed_precision_trains_saves_and_resumes(tmp_path, tiny):
    config = tiny("train.precision=mixed_float16", "train.epochs=3",
                  "model.layers.0.type=lstm")
    train_whole_and_resumed(config, tmp_path)
    record = files.read_json(tmp_path / "full" / "run.json")
    assert record["fast_path"]["precision"] == "mixed_float16"
    history = checkpoints.read_history(tmp_path / "full")
    assert history[-1]["accuracy"] > 0.6  # it learns in 16 bits (the tiny data is easy)
    for name in ("model.keras", "checkpoint.keras"):
        model = keras.saving.load_model(tmp_path / "full" / name)
        assert model.get_layer("lstm_0").compute_dtype == "float16"  # the policy is saved with the model
    # The loss scale is optimizer state, kept by the checkpoint: a resumed run ends where a whole one does.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert history_without_time(tmp_path / "resumed") == history_without_time(tmp_path / "full")


def test_the_training_line_lists_every_bucket_length_or_says_the_recipe():
    from rnn_cli.config import Config, DataConfig

    assert train_module.feed_line(Config(), jit_compile=True) == (
        "batches: length buckets of 128, 256, 384 and 500 tokens, padding masked; "
        "XLA on: the first epoch includes compiling")
    assert train_module.feed_line(Config(data=DataConfig(maxlen=100_000)), jit_compile=False) == (
        "batches: length buckets of 128, 256, 384, ..., 99968 and 100000 (782 lengths) tokens, padding masked; "
        "XLA off")
    recipe = Config(data=DataConfig(bucketing=False))
    assert train_module.feed_line(recipe, jit_compile=False) == (
        "batches: every review padded to 500 (pre), no mask; XLA off")


KILLED_MID_EPOCH = """
import os, signal, sys
from pathlib import Path
import keras
from rnn_cli.config import load_config
from rnn_cli.process_settings import configure
from rnn_cli.training import train

class KillInEpoch2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch >= 5:  # the first call of Keras' loop to end past the fifth batch
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer, or kill -9

config = load_config(sys.argv[1])
configure(config.train, "cpu")
train(config, Path(sys.argv[2]), device="cpu", echo=print, callbacks=(KillInEpoch2(),))
"""


@pytest.mark.parametrize("config_name", ["tiny", "best"])
def test_a_run_killed_mid_epoch_resumes_to_the_history_of_one_never_stopped(tmp_path, tiny, config_name):
    """Dropout included: each epoch's masks come from (seed, epoch), not from the process' start."""
    settings = ["model.layers.0.dropout=0.3", "train.epochs=3"]
    if config_name == "best":  # the shipped config's model and schedule, on the tiny data
        best = load_config("configs/best.yaml")
        settings = ["model.layers.0.type=gru", "model.layers.0.bidirectional=true", "model.layers.0.dropout=0.2",
                    "train.schedule=cosine", "train.epochs=3", f"train.learning_rate={best.train.learning_rate}"]
    config = tiny(*settings)
    whole = train_quietly(config, tmp_path / "whole").history
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(yaml.safe_load((tmp_path / "whole" / "config.yaml").read_text())))
    (tmp_path / "killed").mkdir()
    script = tmp_path / "killed.py"
    script.write_text(KILLED_MID_EPOCH)
    done = subprocess.run([sys.executable, script, tmp_path / "config.yaml", tmp_path / "killed"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert len(checkpoints.read_history(tmp_path / "killed")) == 1  # epoch 2 was cut in its sixth batch
    result = invoke("train", "--resume", "--run", tmp_path / "killed", "--device", "cpu")
    assert result.exit_code == 0, result.output
    resumed = checkpoints.read_history(tmp_path / "killed")
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed] == [
        {k: v for k, v in row.items() if k != "seconds"} for row in whole]


OWN_CONFIG = """\
data: {num_words: 60, maxlen: 30, validation_split: 0.2}
model:
  embedding_dim: 8
  layers: [{type: gru, units: 8}]
train: {optimizer: adam, learning_rate: 0.02, batch_size: 16, epochs: 4}
"""


@pytest.mark.parametrize("classes", [["sport", "music"], ["sport", "music", "food"]], ids=["binary", "3 classes"])
@pytest.mark.parametrize("source", ["csv", "tsv", "jsonl", "folder"])
def test_own_data_trains_evaluates_and_predicts(tmp_path, source, classes):
    rows = topic_rows(classes, 60)
    data = (write_class_folders(tmp_path / "own", rows) if source == "folder"
            else write_table(tmp_path / f"own.{source}", rows))
    (tmp_path / "own.yaml").write_text(OWN_CONFIG)
    run_dir = tmp_path / "run"
    result = cli_train(run_dir, tmp_path / "own.yaml", data)
    assert result.exit_code == 0, result.output
    assert files.read_json(run_dir / runs.CLASSES)["classes"] == sorted(classes)
    metrics = files.read_json(run_dir / runs.METRICS)
    assert metrics["accuracy"] > 1.5 / len(classes), metrics  # well above chance on this easy data
    model = keras.saving.load_model(run_dir / "model.keras")
    assert model.get_layer("head").units == (1 if len(classes) == 2 else len(classes))
    shown = invoke("eval", "--run", run_dir)
    assert shown.exit_code == 0, shown.output
    assert ("macro f1" in shown.output) == (len(classes) > 2) and "accuracy" in shown.output
    word = {"sport": "goal", "music": "guitar", "food": "soup", "pos": "wonderful", "neg": "awful"}
    texts = [f"the {word[name]} and the {word[name]}" for name in classes]
    predicted = invoke("predict", "--run", run_dir, "--json", *texts)
    assert predicted.exit_code == 0, predicted.output
    answers = [json.loads(line) for line in predicted.output.strip().splitlines()]
    assert [answer["label"] for answer in answers] == classes
    if len(classes) > 2:
        assert all(set(answer["probabilities"]) == set(classes) for answer in answers)


@pytest.mark.parametrize("source", ["csv", "folder"])
def test_data_classes_fix_the_order_of_the_model_its_metrics_and_answers(tmp_path, source):
    order = ["sport", "music", "food"]  # not sorted, as ordinal labels are not
    rows = topic_rows(order, 40)
    data = (write_class_folders(tmp_path / "own", rows) if source == "folder"
            else write_table(tmp_path / f"own.{source}", rows))
    (tmp_path / "own.yaml").write_text(OWN_CONFIG)
    run_dir = tmp_path / "run"
    result = cli_train(run_dir, tmp_path / "own.yaml", data, "--set", "data.classes=[sport, music, food]")
    assert result.exit_code == 0, result.output
    assert files.read_json(run_dir / runs.CLASSES)["classes"] == order
    assert files.read_json(run_dir / runs.METRICS)["confusion_matrix"]["classes"] == order
    predicted = invoke("predict", "--run", run_dir, "--json", "the goal and the soup")
    assert list(json.loads(predicted.output)["probabilities"]) == order
    wrong = cli_train(tmp_path / "wrong", tmp_path / "own.yaml", data, "--set", "data.classes=[sport, music]")
    assert wrong.exit_code == 2 and "data.classes ['sport', 'music']:" in wrong.output
    assert "label(s) 'food' not among them" in wrong.output and not (tmp_path / "wrong").exists()


def test_an_own_data_run_of_three_classes_resumes_inspects_plots_and_compares(tmp_path):
    data = write_table(tmp_path / "own.csv", topic_rows(["sport", "music", "food"], 40))
    (tmp_path / "own.yaml").write_text(OWN_CONFIG)
    run_dir = tmp_path / "run"
    assert cli_train(run_dir, tmp_path / "own.yaml", data, "--epochs", "1").exit_code == 0
    resumed = invoke("train", "--resume", "--run", run_dir, "--epochs", "2", "--device", "cpu")
    assert resumed.exit_code == 0, resumed.output
    assert len(checkpoints.read_history(run_dir)) == 2
    inspected = invoke("inspect", "--run", run_dir)
    assert inspected.exit_code == 0 and "head: Dense(3, softmax)" in inspected.output
    assert invoke("plot", "--run", run_dir).exit_code == 0 and (run_dir / runs.CURVES).exists()
    table = invoke("compare", run_dir)
    assert table.exit_code == 0 and "test macro-F1" in table.output


def test_a_missing_column_is_one_line_before_tensorflow_loads_and_leaves_no_run(tmp_path):
    data = write_table(tmp_path / "own.csv", topic_rows(["sport", "music"], 10), text="body")
    (tmp_path / "own.yaml").write_text(OWN_CONFIG)
    code = ("import sys\nfrom click.testing import CliRunner\nfrom rnn_cli.cli import main\n"
            f"result = CliRunner().invoke(main, ['train', '--config', {str(tmp_path / 'own.yaml')!r}, '--data', "
            f"{str(data)!r}, '--run', {str(tmp_path / 'run')!r}])\n"
            "print(result.exit_code, 'tensorflow' in sys.modules, repr(result.output))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    exit_code, loaded, output = done.stdout.split(" ", 2)
    assert (exit_code, loaded) == ("2", "False"), done.stdout
    assert "own.csv: no column 'text'; the file has 'label', 'body'" in output
    assert not (tmp_path / "run").exists()
