"""The Keras backend a process computes with (TensorFlow, JAX or PyTorch), chosen before Keras loads,
and what each backend makes of a config: XLA, and how batches are padded so that a GPU's recurrent
layers can run on cuDNN (docs/performance.md#backends).

Keras reads KERAS_BACKEND once, when it is first imported: `use` sets it before that, in every
process that loads a model. This module imports neither Keras nor a backend.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass

from rnn_cli.config import Config, ModelConfig, TrainConfig, layer_name
from rnn_cli.errors import ConfigError, UserError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT = "tensorflow"
NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
ENV = "KERAS_BACKEND"
# Keras 3.15's kernels for a layer without a mask, faster than its step-by-step loop: cuDNN on a GPU
# (JAX has none for GRU), else a loop that projects every step's inputs in one product first.
PROJECTED = "projected loop"
UNMASKED_GPU = {"jax": {"lstm": "cudnn", "gru": PROJECTED}, "torch": {"lstm": "cudnn", "gru": "cudnn"}}
UNMASKED_CPU = {"jax": {"gru": PROJECTED}, "torch": {"lstm": PROJECTED, "gru": PROJECTED}}


def chosen(train: TrainConfig, recorded: str | None = None) -> str:
    """The backend for `train`: the config's train.backend, else KERAS_BACKEND, else `recorded` (the
    run's own, when an existing run is loaded), else TensorFlow."""
    if train.backend:
        return train.backend
    env = os.environ.get(ENV)
    if env:
        if env not in BACKENDS:
            raise UserError(f"{ENV}={env}: rnn-cli runs on {', '.join(BACKENDS)}; set one, or train.backend")
        return env
    return recorded or DEFAULT


def ready(train: TrainConfig, recorded: str | None = None) -> str:
    """The backend `chosen` for `train`, checked: installed, and able to run `train`; one line if not."""
    backend = chosen(train, recorded)
    installed(backend, f"train.backend {backend}")
    check(train, backend)
    return backend


def installed(backend: str, needed_by: str) -> None:
    if importlib.util.find_spec(backend) is None:  # each backend's module is named as the backend
        extra = "" if backend == DEFAULT else f"; pip install \"rnn-cli[{backend}]\""
        raise UserError(f"{needed_by}: {backend} is not installed{extra}")


def use(backend: str, device: str = "auto", needed_by: str | None = None) -> str:
    """Make Keras load with `backend` in this process (and on the CPU alone for `device` "cpu"); one
    line when it is not installed (`needed_by` names what needs it). Where Keras is loaded already (a
    library caller, a test), its backend stays, and one line says so if it is not `backend`.
    Returns the backend in use."""
    current = loaded_backend()
    if current is not None:
        if current != backend:
            raise UserError(f"{needed_by or 'backend ' + backend}: Keras is loaded on {current} in this process "
                            f"already; run rnn in a new process, or set {ENV}={backend} before Keras is imported")
        return current
    installed(backend, needed_by or f"backend {backend}")
    os.environ[ENV] = backend
    if device == "cpu":  # a GPU cannot be hidden from JAX or PyTorch once they have started
        if backend == "jax":
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
        elif backend == "torch":
            os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
    return backend


def loaded_backend() -> str | None:
    """The backend Keras was loaded with in this process; None while it is not loaded."""
    keras = sys.modules.get("keras")
    return keras.backend.backend() if keras is not None and hasattr(keras, "backend") else None


def check(train: TrainConfig, backend: str) -> None:
    """What a backend cannot do with `train`, in one line before anything loads."""
    if backend == "torch" and train.jit_compile:
        raise ConfigError("train.jit_compile: true means XLA, which the torch backend lacks (Keras would "
                          "torch.compile every batch shape anew, which costs more than it saves); set it "
                          "false, or leave it out (on PyTorch: off)")
    if backend == "torch" and (train.steps_per_execution or 1) > 1:
        raise ConfigError(f"train.steps_per_execution: {train.steps_per_execution} batches per call, which Keras' "
                          "PyTorch trainer refuses; set 1, or leave it out (on PyTorch: 1)")


def xla(train: TrainConfig, backend: str) -> bool:
    """Whether training steps are XLA-compiled: train.jit_compile, or when it is not set, on the
    backends that have XLA (TensorFlow and JAX; JAX runs uncompiled steps op by op)."""
    return train.jit_compile if train.jit_compile is not None else backend != "torch"


# TensorFlow: about 1 ms less per batch; more per call saves a little more and holds more memory
# (docs/performance.md#batches-per-call).
STEPS_PER_EXECUTION = 2


def steps_per_execution(train: TrainConfig, backend: str) -> int:
    """Batches per call of Keras' compiled loop: train.steps_per_execution, or when it is not set,
    STEPS_PER_EXECUTION on TensorFlow, whose loop over them runs in the graph, and 1 elsewhere (Keras' JAX
    and PyTorch trainers loop over them in Python: nothing to save)."""
    if train.steps_per_execution is not None:
        return train.steps_per_execution
    return STEPS_PER_EXECUTION if backend == "tensorflow" else 1


@dataclass(frozen=True)
class Plan:
    """How a training's batches are padded on this backend and device, and what each recurrent
    layer runs on as a result (run.json's "batches" and "kernels")."""

    masked: bool  # the embedding masks padding: right-padded length buckets
    bucketed: bool  # padded to length buckets, not all to maxlen
    kernels: dict[str, dict]  # layer name -> {"kernel": ..., "why": ...}

    @property
    def batches(self) -> str:
        if not self.bucketed:
            return "padded to maxlen, no mask"
        return "length buckets, right-padded and masked" if self.masked else "length buckets, left-padded, no mask"


def plan(config: Config, backend: str, device: str, masked: bool | None = None) -> Plan:
    """Choose the padding for `config` on `backend` and `device` ("cpu" or "gpu:<name>"), or with
    `masked` given (a resumed run's model decided it), describe that one.

    Length buckets are masked (right-padded), which gives the results of padding to maxlen for
    about half the steps. TensorFlow's cuDNN kernels take such a mask; Keras' JAX and PyTorch kernels
    take none and fall back to a step-by-step loop. So on a GPU, where cuDNN is many times faster,
    JAX and PyTorch pad each bucket on the left without a mask, as the book's recipe pads to maxlen,
    when a layer can run on cuDNN that way. On a CPU the mask stays: the same results as TensorFlow's.
    """
    gpu, bucketed = device.startswith("gpu"), config.data.bucketing
    if masked is None:
        fused = UNMASKED_GPU.get(backend, {}) if bucketed and gpu else {}
        masked = bucketed and not any(layer.type in fused and layer.recurrent_dropout == 0
                                      for layer in config.model.layers)
    return Plan(masked, bucketed, kernels(config.model, backend, gpu, masked, config.train.precision))


def kernels(config: ModelConfig, backend: str, gpu: bool, masked: bool, precision: str = "float32") -> dict[str, dict]:
    """Per recurrent layer, the kernel Keras runs it on and why (its own conditions, Keras 3.15), and what rnn-cli's
    loop does instead (rnn_cli/projected.py)."""
    table = (UNMASKED_GPU if gpu else UNMASKED_CPU).get(backend, {})
    report = {}
    for i, layer in enumerate(config.layers):
        if layer.type == "simple_rnn":
            found = ("loop", "SimpleRNN has no fused kernel on any backend; its inputs are projected before the loop"
                             + ("; its gradient in training is written out" if backend == "tensorflow" else ""))
        elif layer.recurrent_dropout > 0:
            found = ("loop", f"recurrent_dropout {layer.recurrent_dropout}: the fused kernels need 0")
        elif backend == "tensorflow":
            found = (("cudnn", "TensorFlow's cuDNN kernel takes right-padded masked batches") if gpu else
                     ("loop", "TensorFlow has no fused recurrent kernel for the CPU" + _tf_loop(masked, precision)))
        elif layer.type not in table:
            found = ("loop", f"Keras' {backend} backend has no fused {layer.type.upper()} kernel on the "
                             f"{'GPU' if gpu else 'CPU'}")
        elif masked:
            found = ("loop", f"masked batches: Keras' {backend} kernels take no mask"
                             + ("" if gpu else " (the CPU keeps the mask: the same results as TensorFlow's)"))
        else:
            found = (table[layer.type], "batches without a mask" + (", left-padded buckets" if gpu else ""))
        report[layer_name(layer, i)] = {"kernel": found[0], "why": found[1]}
    return report


def _tf_loop(masked: bool, precision: str) -> str:
    """What rnn-cli's loop of an LSTM or GRU (without recurrent dropout) does on TensorFlow's CPU: under a mask it
    runs over the steps some review of the batch has (projected.spanned_loop), and trains in float32 with its
    gradient written out (projected.written_gated)."""
    if not masked:
        return ""
    return ("; its loop runs over the steps some review of the batch has"
            + ("; its gradient in training is written out" if precision == "float32" else ""))
