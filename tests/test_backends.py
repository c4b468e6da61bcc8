"""Choosing the Keras backend, and what each backend and device make of a config: XLA, the padding of
batches and the kernel of each recurrent layer. Decisions only: no Keras is loaded for them."""

import dataclasses
import os
import subprocess
import sys

import pytest

from rnn_cli import backends, loading
from rnn_cli.config import Config, DataConfig, LayerConfig, ModelConfig, TrainConfig
from rnn_cli.errors import ConfigError, UserError


def config(*types, bucketing=True, **fields):
    return Config(data=DataConfig(bucketing=bucketing),
                  model=ModelConfig(layers=tuple(LayerConfig(type=t, **fields) for t in types)))


def test_config_wins_over_keras_backend_which_wins_over_the_runs_own(monkeypatch):
    monkeypatch.delenv(backends.ENV, raising=False)
    assert backends.chosen(TrainConfig()) == "tensorflow"
    assert backends.chosen(TrainConfig(), recorded="jax") == "jax"
    monkeypatch.setenv(backends.ENV, "torch")
    assert backends.chosen(TrainConfig(), recorded="jax") == "torch"
    assert backends.chosen(TrainConfig(backend="jax")) == "jax"
    monkeypatch.setenv(backends.ENV, "numpy")
    with pytest.raises(UserError, match="KERAS_BACKEND=numpy: rnn-cli runs on tensorflow, jax, torch"):
        backends.chosen(TrainConfig())


def test_xla_is_on_where_the_backend_has_it_and_refused_on_torch_only_when_asked():
    assert backends.xla(TrainConfig(), "tensorflow") and backends.xla(TrainConfig(), "jax")
    assert not backends.xla(TrainConfig(), "torch")
    assert not backends.xla(TrainConfig(jit_compile=False), "jax")
    backends.check(TrainConfig(jit_compile=False), "torch")
    with pytest.raises(ConfigError, match="train.jit_compile: true means XLA, which the torch backend lacks"):
        backends.check(TrainConfig(jit_compile=True), "torch")
    backends.check(TrainConfig(steps_per_execution=1), "torch")
    with pytest.raises(ConfigError, match="train.steps_per_execution: 2 batches per call, which Keras' PyTorch"):
        backends.check(TrainConfig(steps_per_execution=2), "torch")


def test_a_backend_that_is_not_installed_is_one_line(monkeypatch):
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r'train.backend jax: jax is not installed; pip install "rnn-cli\[jax\]"'):
        backends.ready(TrainConfig(backend="jax"))


def test_a_loaded_keras_keeps_its_backend_and_says_so_when_another_is_asked():
    import keras

    current = keras.backend.backend()
    other = next(name for name in backends.BACKENDS if name != current)
    assert backends.use(current) == current
    with pytest.raises(UserError, match=f"Keras is loaded on {current} in this process already"):
        backends.use(other, needed_by=f"train.backend {other}")


def test_on_a_cpu_every_backend_keeps_masked_buckets_and_says_why_its_layers_loop():
    for backend in backends.BACKENDS:
        plan = backends.plan(config("lstm", "gru"), backend, "cpu")
        assert plan.masked and plan.bucketed and plan.batches == "length buckets, right-padded and masked"
        assert {entry["kernel"] for entry in plan.kernels.values()} == {"loop"}
    assert "the CPU keeps the mask" in backends.plan(config("lstm"), "torch", "cpu").kernels["lstm_0"]["why"]
    # what rnn-cli's loop does on TensorFlow: the span under a mask, and in float32 the gradient written out
    def why(plan):
        return plan.kernels["lstm_0"]["why"]

    assert why(backends.plan(config("lstm"), "tensorflow", "cpu")).endswith(
        "; its loop runs over the steps some review of the batch has; its gradient in training is written out")
    mixed = dataclasses.replace(config("lstm"), train=TrainConfig(precision="mixed_float16"))
    assert why(backends.plan(mixed, "tensorflow", "cpu")).endswith("; its loop runs over the steps some review of "
                                                                     "the batch has")
    assert why(backends.plan(config("lstm", bucketing=False), "tensorflow", "cpu")) == (
        "TensorFlow has no fused recurrent kernel for the CPU")


def test_on_a_gpu_tensorflow_takes_cudnn_with_the_mask():
    plan = backends.plan(config("lstm", "gru", "simple_rnn"), "tensorflow", "gpu:H200")
    assert plan.masked
    assert {name: entry["kernel"] for name, entry in plan.kernels.items()} == {
        "lstm_0": "cudnn", "gru_1": "cudnn", "simple_rnn_2": "loop"}


@pytest.mark.parametrize("backend, gru", [("jax", "projected loop"), ("torch", "cudnn")])
def test_on_a_gpu_jax_and_torch_pad_buckets_on_the_left_without_a_mask_for_cudnn(backend, gru):
    plan = backends.plan(config("lstm", "gru"), backend, "gpu:H200")
    assert not plan.masked and plan.bucketed and plan.batches == "length buckets, left-padded, no mask"
    assert plan.kernels == {"lstm_0": {"kernel": "cudnn", "why": "batches without a mask, left-padded buckets"},
                            "gru_1": {"kernel": gru, "why": "batches without a mask, left-padded buckets"}}


def test_on_a_gpu_the_mask_stays_where_no_layer_would_gain():
    for stack, fields in ((("simple_rnn",), {}), (("lstm",), {"recurrent_dropout": 0.2})):
        plan = backends.plan(config(*stack, **fields), "jax", "gpu:H200")
        assert plan.masked
    (entry,) = backends.plan(config("lstm", recurrent_dropout=0.2), "torch", "gpu:H200").kernels.values()
    assert entry == {"kernel": "loop", "why": "recurrent_dropout 0.2: the fused kernels need 0"}


def test_the_book_recipe_is_never_masked_and_takes_the_unmasked_kernels():
    plan = backends.plan(config("lstm", "gru", bucketing=False), "torch", "cpu")
    assert not plan.masked and not plan.bucketed and plan.batches == "padded to maxlen, no mask"
    assert {entry["kernel"] for entry in plan.kernels.values()} == {"projected loop"}
    jax = backends.plan(config("lstm", "gru", bucketing=False), "jax", "cpu").kernels
    assert jax["lstm_0"]["kernel"] == "loop" and jax["gru_1"]["kernel"] == "projected loop"


def test_the_backend_a_run_records_is_read_leniently(tmp_path):
    (tmp_path / "run.json").write_text('{"backend": "jax"}', encoding="utf-8")
    assert loading.recorded_backend(tmp_path) == "jax"
    for damaged in ("{not json", '{"backend": "numpy"}', "[1]"):  # loading the run says what is wrong
        (tmp_path / "run.json").write_text(damaged, encoding="utf-8")
        assert loading.recorded_backend(tmp_path) is None


@pytest.mark.parametrize("backend, variable", [("jax", "JAX_PLATFORMS"), ("torch", "KERAS_TORCH_DEVICE")])
def test_device_cpu_keeps_jax_and_torch_off_a_gpu_before_they_load(backend, variable):
    """Once JAX or PyTorch have started, a GPU cannot be hidden from them: `use` says so first."""
    code = ("import os, sys; from rnn_cli import backends; backends.use(sys.argv[1], sys.argv[2]); "
            "print(os.environ.get('KERAS_BACKEND'), os.environ.get(sys.argv[3]), 'keras' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", variable)}
    for device, expected in (("cpu", f"{backend} cpu False"), ("auto", f"{backend} None False")):
        done = subprocess.run([sys.executable, "-c", code, backend, device, variable], capture_output=True,
                              text=True, env=env, check=True)
        assert done.stdout.split("\n")[0] == expected
