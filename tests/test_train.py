"""The training path's decisions: fast path on by default, the book recipe on request, GPU choices."""

import json

import keras
import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

from rnn_cli import runs
from rnn_cli import train as train_module
from rnn_cli.batches import predict_probabilities
from rnn_cli.config import load_config
from rnn_cli.data import load_imdb
from rnn_cli.evaluate import classification_metrics
from rnn_cli.train import train


def tiny(tiny_config, imdb_archive, *overrides):
    return load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}", *overrides])


def train_whole_and_resumed(config, parent):
    """Train `config` into parent/full in one go, and into parent/resumed stopped after epoch 2
    (as by Ctrl-C) and resumed."""
    quiet = {"device": "cpu", "echo": lambda line: None, "progress": False}

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    (parent / "full").mkdir()
    train(config, parent / "full", **quiet)
    (parent / "resumed").mkdir()
    with pytest.raises(KeyboardInterrupt):
        train(config, parent / "resumed", callbacks=(StopAfterTwo(),), **quiet)
    train(config, parent / "resumed", resume=True, **quiet)


def history_without_time(run_dir):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in runs.read_history(run_dir)]


def test_fast_path_is_the_default(trained_run):
    record = json.loads((trained_run / "run.json").read_text())
    assert record["fast_path"] == {"bucketing": True, "jit_compile": True, "determinism": "xla",
                                   "precision": "float32"}
    assert record["cudnn"] is None  # a CPU run
    model = keras.saving.load_model(trained_run / "model.keras")
    assert model.get_layer("embedding").mask_zero


def test_book_recipe_is_one_setting_away_and_repeatable(tmp_path, tiny_config, imdb_archive):
    config = tiny(tiny_config, imdb_archive, "data.bucketing=false", "train.jit_compile=false")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        train(config, tmp_path / name, device="cpu", echo=lambda line: None)
    assert history_without_time(tmp_path / "a") == history_without_time(tmp_path / "b")
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    # Without XLA, same seed needs TF's op determinism (which in turn keeps Keras off XLA).
    assert record["fast_path"] == {"bucketing": False, "jit_compile": False, "determinism": "op_determinism",
                                   "precision": "float32"}
    assert not keras.saving.load_model(tmp_path / "a" / "model.keras").get_layer("embedding").mask_zero


def test_xla_run_after_a_recipe_run_in_one_process_keeps_xla(tmp_path, tiny_config, imdb_archive, monkeypatch):
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
    (tmp_path / "recipe").mkdir()
    train(tiny(tiny_config, imdb_archive, "train.jit_compile=false", "data.bucketing=false", "train.epochs=1"),
          tmp_path / "recipe", device="cpu", echo=lambda line: None)
    (tmp_path / "fast").mkdir()
    train(tiny(tiny_config, imdb_archive, "train.epochs=1"), tmp_path / "fast", device="cpu",
          echo=lambda line: None)
    record = json.loads((tmp_path / "fast" / "run.json").read_text())
    assert record["fast_path"]["jit_compile"] is True
    assert not tf_config.is_op_determinism_enabled()
    assert [options["batch_size"] for options in evaluated] == [8, 8]
    assert validation_sizes == [8, 8]  # validation too: no larger buffers than training's
    assert filled == [False, True]  # the recipe keeps its short batch; the fast path fills it


def test_gpu_run_records_cudnn_and_warns_when_the_config_disables_it(tmp_path, tiny_config, imdb_archive,
                                                                      monkeypatch):
    """The GPU decisions, taken on CPU: the device is only a name to them."""
    monkeypatch.setattr("rnn_cli.train.select_device", lambda wanted: "gpu:0 (simulated)")
    config = tiny(tiny_config, imdb_archive, "train.epochs=1", "model.layers.0.type=lstm",
                  "model.layers.0.recurrent_dropout=0.2")
    warnings = []
    (tmp_path / "run").mkdir()
    train(config, tmp_path / "run", device="gpu", echo=lambda line: None, warn=warnings.append)
    assert len(warnings) == 1 and "lstm_0 will not use cuDNN" in warnings[0]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["cudnn"] == {"lstm_0": {"eligible": False, "reason": "recurrent_dropout is 0.2; cuDNN needs 0"}}
    assert record["fast_path"]["determinism"] is None  # op determinism would refuse cuDNN


def test_cosine_schedule_lowers_the_rate_every_epoch_and_resumes_on_it(tmp_path, tiny_config, imdb_archive):
    config = tiny(tiny_config, imdb_archive, "train.schedule=cosine", "train.epochs=3")
    train_whole_and_resumed(config, tmp_path)
    rates = [row["learning_rate"] for row in runs.read_history(tmp_path / "full")]
    assert rates[0] < 0.01 and rates[0] > rates[1] > rates[2] >= 0  # 0.01 is the tiny config's rate
    assert [row["learning_rate"] for row in runs.read_history(tmp_path / "resumed")] == rates
    # Each process' first epoch traces and compiles: run.json names them for rnn compare.
    warmups = {name: runs.read_json(tmp_path / name / runs.RUN_RECORD)["timings"]["warmup_epochs"]
               for name in ("full", "resumed")}
    assert warmups == {"full": [1], "resumed": [1, 3]}


def test_weight_averaging_is_what_validation_scores_and_what_is_saved(tmp_path, tiny_config, imdb_archive):
    config = tiny(tiny_config, imdb_archive, "train.ema_momentum=0.9", "train.epochs=3",
                  "train.early_stopping.restore_best=false")
    train_whole_and_resumed(config, tmp_path)
    val = load_imdb(config.data).val
    for run_dir in (tmp_path / "full", tmp_path / "resumed"):
        saved = keras.saving.load_model(run_dir / "model.keras")
        checkpoint = keras.saving.load_model(run_dir / "checkpoint.keras")
        raw = checkpoint.get_weights()  # training goes on from the weights themselves
        checkpoint.optimizer.finalize_variable_values(checkpoint.trainable_variables)
        for averaged, kept in zip(checkpoint.get_weights(), saved.get_weights()):
            np.testing.assert_array_equal(kept, averaged)  # the saved model is the average...
        assert any(not np.allclose(a, b) for a, b in zip(raw, saved.get_weights()))  # ...not the last step
        # Validation scored the averaged weights: those saved for the last epoch and the best one.
        history = runs.read_history(run_dir)
        best = keras.saving.load_model(run_dir / "model.keras")
        best.load_weights(run_dir / "best.weights.h5")
        for model, row in ((saved, history[-1]), (best, runs.best_row(history))):
            loss = classification_metrics(val.labels, predict_probabilities(model, val, config.data))["loss"]
            assert loss == pytest.approx(row["val_loss"], abs=2e-6)
    # The average went on from the checkpoint: a resumed run ends where an uninterrupted one does.
    assert history_without_time(tmp_path / "resumed") == history_without_time(tmp_path / "full")


def test_mixed_precision_trains_saves_and_resumes(tmp_path, tiny_config, imdb_archive):
    config = tiny(tiny_config, imdb_archive, "train.precision=mixed_float16", "train.epochs=3",
                  "model.layers.0.type=lstm")
    train_whole_and_resumed(config, tmp_path)
    record = json.loads((tmp_path / "full" / "run.json").read_text())
    assert record["fast_path"]["precision"] == "mixed_float16"
    history = runs.read_history(tmp_path / "full")
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
    recipe = Config(data=DataConfig(bucketing=False))
    assert train_module.feed_line(recipe, jit_compile=False) == (
        "batches: every review padded to 500 (pre), no mask; XLA off")
