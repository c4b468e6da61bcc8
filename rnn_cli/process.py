"""Process-wide settings for a training: the device, repeatable arithmetic, and two that lower the
peak memory (docs/performance.md). `configure` makes them all, once, before the model is built; the
CLI calls it (and each seed's process), so a library caller of `rnn_cli.train.train` keeps its own.

A user's own setting always wins: XLA_FLAGS naming the flag, MALLOC_ARENA_MAX in the environment.
This module imports TensorFlow only inside its functions: the CLI reads CHOICES before it loads.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path

from rnn_cli.config import TrainConfig
from rnn_cli.errors import UserError
from rnn_cli.files import log_dir

CHOICES = ("auto", "cpu", "gpu")  # --device
# XLA's newer CPU fusion emitters keep more memory while compiling a recurrent training step, for no
# speed gained; the classic emitters are used.
LEAN_XLA_CPU_FLAG = "--xla_cpu_use_fusion_emitters=false"
# glibc gives a thread that finds the other threads' malloc arenas busy an arena of its own (up to 8
# per core), and each keeps the memory freed into it: one arena is enough for a CPU training.
MALLOC_ARENAS = 1
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


VERBOSE = "RNN_CLI_VERBOSE"  # set (by --verbose): TensorFlow's own log lines stay on the terminal
NATIVE_LOG_LIMIT = 1 << 20  # bytes; a longer log is started anew
_DIVERTED = False


def native_log() -> Path:
    """Where TensorFlow's own start-up and C++ log lines go (`divert_native_logs`)."""
    return log_dir() / "tensorflow.log"


def divert_native_logs() -> Path | None:
    """Send what TensorFlow's C++ side writes to the process' standard error (file descriptor 2: CUDA
    probing, CPU features, absl's lines from before its logging starts, which no setting silences)
    to `native_log()`, keeping Python's sys.stderr on the terminal; returns the log. Nothing is
    changed under --verbose, when sys.stderr is not the process' own (a test's capture), or twice."""
    global _DIVERTED
    if _DIVERTED or os.environ.get(VERBOSE) or sys.stderr is not sys.__stderr__ or sys.stderr is None:
        return None
    try:
        log = native_log()
        log.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if log.exists() and log.stat().st_size > NATIVE_LOG_LIMIT
                                             else os.O_APPEND)
        fd = os.open(log, flags, 0o644)
    except OSError:
        return None  # no writable cache folder: TensorFlow's lines stay where they were
    sys.stderr.flush()
    terminal = os.dup(2)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = sys.__stderr__ = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding,
                                            errors="backslashreplace")
    _DIVERTED = True
    return log


def configure(config: TrainConfig, choice: str) -> str:
    """Every process-wide setting for training `config` on the device `choice`; returns the device
    ("cpu" or "gpu:<name>")."""
    device = select_device(choice)
    set_determinism(config, device)
    lean_xla()
    if device == "cpu":  # on a GPU the host's threads feed the device; one arena was never measured there
        few_malloc_arenas()
    return device


def select_device(choice: str) -> str:
    """Make TensorFlow use the chosen device and say which: "cpu" or "gpu:<name>".

    Must run before TensorFlow places any op: hiding GPUs is impossible afterwards.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise UserError("--device gpu: TensorFlow sees no GPU on this machine (is a CUDA build of "
                        "TensorFlow installed, e.g. tensorflow[and-cuda]?); use --device cpu or auto")
    if choice == "cpu" or not gpus:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return "cpu"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"gpu:{details.get('device_name', gpus[0].name)}"


def set_determinism(config: TrainConfig, device: str) -> None:
    """Make a CPU run repeatable when asked (`determinism` says how).

    Seeds alone are not enough: multi-threaded reductions (the embedding's gradient) vary from run
    to run. XLA-compiled steps are repeatable by themselves; uncompiled ones need TF's op
    determinism, which Keras in turn treats as a reason to switch XLA off, so only one is set. On a
    GPU op determinism would refuse the fast kernels, so it stays off there.
    """
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    if config.deterministic and device == "cpu" and not config.jit_compile:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()  # global: an earlier run in this process may have set it


def determinism(config: TrainConfig, device: str) -> str | None:
    """How this process makes the run repeatable: "op_determinism", "xla" or None (run.json)."""
    from tensorflow.python.framework import config as tf_config

    if tf_config.is_op_determinism_enabled():
        return "op_determinism"
    return "xla" if config.deterministic and device == "cpu" and config.jit_compile else None


def lean_xla() -> None:
    """Ask XLA for its leaner CPU compiler, unless XLA_FLAGS already sets that flag.

    XLA reads XLA_FLAGS once, at the process' first compilation, so this runs before any.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if LEAN_XLA_CPU_FLAG.split("=")[0] not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {LEAN_XLA_CPU_FLAG}".strip()


def few_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at MALLOC_ARENAS; returns whether the cap was set.

    Nothing to do where MALLOC_ARENA_MAX is set (glibc has read it) or the C library is not glibc.
    The cap holds for arenas made after it, so it works once TensorFlow is imported, before training.
    """
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    return ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS) == 1
