"""Process-wide settings that lower `rnn train`'s peak memory at no speed measured: both must come
before what they concern (XLA's first compilation, the malloc arenas of training's threads), so
`train` makes them before it builds the model.

A user's own setting always wins: XLA_FLAGS naming the flag, MALLOC_ARENA_MAX in the environment.
"""

from __future__ import annotations

import ctypes
import os
import platform

# XLA's newer CPU fusion emitters keep ~200 MiB more memory while compiling the training step of a
# recurrent model, for no speed we could measure (benchmarks/bench.py); the classic emitters are used.
LEAN_XLA_CPU_FLAG = "--xla_cpu_use_fusion_emitters=false"
# glibc gives a thread that finds the other threads' malloc arenas busy an arena of its own (up to 8
# per core), and each arena keeps the memory freed into it. TensorFlow's threads and XLA's compiler
# spread over several; one arena lowered the peak by 30-35 MiB in CPU training (SimpleRNN and LSTM,
# full data, benchmarks/bench.py), epochs no slower on 2 cores.
MALLOC_ARENAS = 1
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def lean_process(device: str) -> None:
    """Both settings for a training on `device` ("cpu" or "gpu:..."). The arena cap only on CPU: on
    a GPU the host's threads feed the device, and one arena was never measured there."""
    lean_xla()
    if device == "cpu":
        few_malloc_arenas()


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
