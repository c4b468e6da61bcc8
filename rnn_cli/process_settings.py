"""Process-wide settings for a training, on the backend Keras loaded with: the device, repeatable
arithmetic, and two that lower the peak memory (docs/performance.md). `configure` makes them all,
once, before the model is built; the CLI calls it (and each seed's process), so a library caller of
`rnn_cli.training.train` keeps its own.

A user's own setting always wins: XLA_FLAGS naming the flag, MALLOC_ARENA_MAX in the environment.
This module imports Keras and its backend only inside its functions: the CLI reads CHOICES first.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import os
import platform
import sys
from pathlib import Path

from rnn_cli import backends, loading
from rnn_cli.backends import xla
from rnn_cli.memory import GATES
from rnn_cli.compiled import compile_cache
from rnn_cli.config import Config, ModelConfig, TrainConfig
from rnn_cli.errors import UserError
from rnn_cli.files import log_dir

CHOICES = ("auto", "cpu", "gpu")  # --device
# XLA's CPU emitters: the newer fusion emitters compile the optimizer's update of the embedding table (a square
# root over every row) about 1 ms a step faster here, but compile longer and keep more memory while compiling;
# they are used where that millisecond is a large part of a step (docs/performance.md#xlas-emitters).
EMITTERS_FLAG = "--xla_cpu_use_fusion_emitters"
FUSION_EMITTERS_WORK = 1 << 18  # a recurrent step this small (multiply-adds): the shipped SimpleRNN, not the LSTM
FUSION_EMITTERS_TABLE = 1 << 17  # an embedding table this large (words x dimensions): the shipped ones, not the tests'
# glibc gives a thread that finds the other threads' malloc arenas busy an arena of its own (up to 8
# per core), and each keeps the memory freed into it: one arena is enough for a CPU training.
MALLOC_ARENAS = 1
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
# A recurrent step this small (multiply-adds of its matrix products) runs faster on one thread than
# split across cores: the split costs more than the work (measured on 2 cores, docs/performance.md).
ONE_THREAD_WORK = 1 << 20
_THREADS: int | None = None


# Installed libraries that TensorFlow and Keras import while they load only to see whether they are there
# (TFLite's JAX converter, Keras' pandas slicing and scikit-learn wrappers), none of which rnn uses: about
# 1.5 s of every process's start where they are installed (docs/performance.md#starting-a-process).
PROBED = ("jax", "pandas", "sklearn")
PROBING = ("keras", "tensorflow")

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


class _SkipProbes(importlib.abc.MetaPathFinder):
    """An import of a PROBED library while Keras or TensorFlow is loading finds it missing, as where it is not
    installed; any import after is as usual. Never the backend Keras is to load (KERAS_BACKEND: JAX), and only for
    an `import`: a question to importlib.util.find_spec (PyTorch's compiler asks it about these libraries while it
    loads with Keras) gets the true answer, as raising there would break the one who asked."""

    def find_spec(self, name, path=None, target=None):
        if name in PROBED and name != os.environ.get(backends.ENV) and any(map(_loading, PROBING)) and _importing():
            raise ModuleNotFoundError(f"No module named {name!r} (not loaded with Keras by rnn)", name=name)
        return None


def _importing() -> bool:
    """Whether the finder was asked by an import statement (CPython's import calls it from these two frames)."""
    frame = sys._getframe(3)  # here <- _SkipProbes.find_spec <- importlib._bootstrap._find_spec <- the one who asks
    return frame.f_code.co_name == "_find_and_load_unlocked" and frame.f_globals.get("__name__") == "importlib._bootstrap"


def _loading(module: str) -> bool:
    """Whether `module` is being imported now: its spec is marked so until it has run (CPython's import)."""
    return bool(getattr(getattr(sys.modules.get(module), "__spec__", None), "_initializing", False))


def skip_probed_imports() -> None:
    """In rnn's own processes (the command, a seed's process), before Keras loads: Keras and TensorFlow load
    without the PROBED libraries. Not for a library caller, whose own Keras may want them."""
    if not any(isinstance(finder, _SkipProbes) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SkipProbes())


def load_backend(config: TrainConfig, device: str, run_dir: Path) -> str:
    """Before Keras loads, in a process that trains `config` into `run_dir`: send the native start-up
    lines to a log and choose the backend (a resumed run's own, unless config or KERAS_BACKEND say
    otherwise); one line if it cannot run `config`."""
    backend = backends.ready(config, loading.recorded_backend(run_dir))
    divert_native_logs()
    return backends.use(backend, device)


def configure(config: TrainConfig, choice: str, model: ModelConfig | None = None, words: int = 0) -> str:
    """Every process-wide setting for training `config` (of the model `model` on a vocabulary of `words`, when
    given) on the device `choice`, on the backend Keras loaded with (`rnn_cli.backends.use`); returns the
    device ("cpu" or "gpu:<name>")."""
    backend = current_backend()
    if backend == "tensorflow":  # measured there; JAX's XLA may know other flags, and aborts on unknown ones
        choose_emitters(model, config.batch_size, words)  # before the compile folder, named by XLA_FLAGS too
    compile_cache(backend)  # before TensorFlow's devices start: they read TF_XLA_FLAGS once
    device = select_device(choice, backend)
    if backend == "tensorflow" and model is not None and device == "cpu":
        one_thread_for_small_steps(model, config.batch_size)
    set_determinism(config, device, backend)
    if device == "cpu":  # on a GPU the host's threads feed the device; one arena was never measured there
        few_malloc_arenas()
    return device


def configure_training(config: Config, choice: str) -> str:
    """`configure` for training the whole `config` (its model, on its vocabulary) on the device `choice`, as `rnn
    train` and each seed's process do; returns the device."""
    return configure(config.train, choice, config.model, config.data.num_words)


def set_seed(seed: int) -> None:
    """keras.utils.set_random_seed (Python, NumPy, the backend, Keras' own generator), which also
    seeds TensorFlow wherever it is installed, importing it: on the other backends it is kept out."""
    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    sys.modules["tensorflow"] = None  # an import of it raises ImportError: Keras takes it as absent
    try:
        keras.utils.set_random_seed(seed)
    finally:
        del sys.modules["tensorflow"]


def current_backend() -> str:
    import keras

    return keras.backend.backend()


def select_device(choice: str, backend: str = "tensorflow") -> str:
    """Make the backend use the chosen device and say which: "cpu" or "gpu:<name>".

    Must run before the backend places anything: TensorFlow cannot hide a GPU afterwards (JAX and
    PyTorch are kept on the CPU by `rnn_cli.backends.use`, before they load).
    """
    if backend == "jax":
        import jax

        gpus = [] if choice == "cpu" else [d for d in jax.devices() if d.platform == "gpu"]
        names = [gpus[0].device_kind] if gpus else []
    elif backend == "torch":
        import torch

        available = choice != "cpu" and torch.cuda.is_available()
        names = [torch.cuda.get_device_name(0)] if available else []
    else:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if choice == "cpu" and gpus:
            tf.config.set_visible_devices([], "GPU")
        names = ([tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)]
                 if gpus and choice != "cpu" else [])
    if choice == "gpu" and not names:
        hint = {"tensorflow": "a CUDA build of TensorFlow, e.g. tensorflow[and-cuda]",
                "jax": "a CUDA build of JAX, e.g. jax[cuda13]", "torch": "a CUDA build of PyTorch"}[backend]
        raise UserError(f"--device gpu: {backends.NAMES[backend]} sees no GPU on this machine (is {hint} "
                        "installed?); use --device cpu or auto")
    return f"gpu:{names[0]}" if names else "cpu"


def set_determinism(config: TrainConfig, device: str, backend: str = "tensorflow") -> None:
    """Make a CPU run repeatable when asked (`determinism` says how).

    Seeds alone are not enough: multi-threaded reductions (the embedding's gradient) vary from run
    to run. XLA-compiled steps are repeatable by themselves (on JAX every step is XLA's); uncompiled
    TensorFlow ones need TF's op determinism, which Keras in turn treats as a reason to switch XLA
    off, so only one is set; PyTorch has its own switch. On a GPU these would refuse the fast
    kernels, so they stay off there.
    """
    wanted = config.deterministic and device == "cpu"
    if backend == "torch":
        import torch

        torch.use_deterministic_algorithms(wanted)
    elif backend == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework import config as tf_config

        if wanted and not xla(config, backend):
            tf.config.experimental.enable_op_determinism()
        else:
            tf_config.disable_op_determinism()  # global: an earlier run in this process may have set it


def determinism(config: TrainConfig, device: str, backend: str = "tensorflow") -> str | None:
    """How this process makes the run repeatable: "op_determinism", "xla", "torch_deterministic" or
    None (run.json)."""
    if backend == "torch":
        import torch

        return "torch_deterministic" if torch.are_deterministic_algorithms_enabled() else None
    if backend == "tensorflow":
        from tensorflow.python.framework import config as tf_config

        if tf_config.is_op_determinism_enabled():
            return "op_determinism"
        return "xla" if config.deterministic and device == "cpu" and xla(config, backend) else None
    return "xla" if config.deterministic and device == "cpu" else None


def choose_emitters(model: ModelConfig | None, batch_size: int, words: int) -> bool | None:
    """Choose XLA's CPU emitters for training `model` on a vocabulary of `words` (model None: no training),
    unless XLA_FLAGS already sets them: the fusion emitters where the optimizer's update of the embedding table
    (at least FUSION_EMITTERS_TABLE numbers) is a large part of a small step (at most FUSION_EMITTERS_WORK
    multiply-adds), the classic (leaner, quicker to compile) ones otherwise. Returns whether the fusion
    emitters were chosen; None where XLA_FLAGS had the flag.

    XLA reads XLA_FLAGS once, at the process' first compilation, so this runs before any.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if EMITTERS_FLAG in flags:
        return None
    fusion = (model is not None and words * model.embedding_dim >= FUSION_EMITTERS_TABLE
              and step_work(model, batch_size) <= FUSION_EMITTERS_WORK)
    os.environ["XLA_FLAGS"] = f"{flags} {EMITTERS_FLAG}={str(fusion).lower()}".strip()
    return fusion


def step_work(model: ModelConfig, batch_size: int) -> int:
    """Multiply-adds of the largest recurrent layer's matrix products in one time step of a batch."""
    width, work = model.embedding_dim, 0
    for layer in model.layers:
        directions = 2 if layer.bidirectional else 1
        work = max(work, batch_size * (width + layer.units) * GATES[layer.type] * layer.units * directions)
        width = layer.units * directions
    return work


def one_thread_for_small_steps(model: ModelConfig, batch_size: int) -> int | None:
    """Run TensorFlow's operations on one thread when the model's recurrent step is small
    (ONE_THREAD_WORK); returns the thread count set, or None where TensorFlow keeps its own: a larger
    step, the user's TF_NUM_INTRAOP_THREADS, or TensorFlow already started in this process."""
    global _THREADS
    if step_work(model, batch_size) > ONE_THREAD_WORK or "TF_NUM_INTRAOP_THREADS" in os.environ:
        return None
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:
        return None  # TensorFlow's runtime has started (a library caller's earlier work): it keeps its threads
    _THREADS = 1
    return _THREADS


def threads() -> int | None:
    """The intra-op thread count `one_thread_for_small_steps` set in this process (run.json), or None."""
    return _THREADS


def few_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at MALLOC_ARENAS; returns whether the cap was set.

    Nothing to do where MALLOC_ARENA_MAX is set (glibc has read it) or the C library is not glibc.
    The cap holds for arenas made after it, so it works once TensorFlow is imported, before training.
    """
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    return ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS) == 1


def progress_kind(progress: bool | str | None, stream=None) -> str | None:
    """How a training shows its progress within an epoch: "bar" (tqdm) on a terminal, "lines" elsewhere, None
    for none. `progress`: None decides by `stream` (stderr); False is none; True, "bar" or "lines" as said."""
    if progress is None:
        stream = stream or sys.stderr
        return "bar" if hasattr(stream, "isatty") and stream.isatty() else "lines"
    return {True: "bar", False: None}.get(progress, progress)
