"""Compiled training steps kept on disk: a process that meets the same model and shapes again (a
--seeds run, a tune trial, a resumed or repeated run) loads what XLA compiled instead of compiling it
(docs/performance.md#compiling-once). `compile_cache` sets it up, before the first compilation.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from pathlib import Path

from rnn_cli.files import cache_dir

COMPILE_CACHE = "RNN_CLI_COMPILE_CACHE"  # a folder, or "off"; default: compiled/ in the cache folder
COMPILE_CACHE_BYTES = 512 << 20  # the oldest entries go first beyond this
STALE_SECONDS = 3600  # a half-written entry this old was left by a killed process
TF_CACHE_FLAG = "--tf_xla_persistent_cache_directory"
_COMPILE_CACHE: Path | None = None


def compile_cache(backend: str) -> Path | None:
    """Keep XLA's compiled steps on disk (TensorFlow's persistent XLA cache, JAX's compilation cache), so
    that a process meeting the same model and shapes again (a --seeds run, a tune trial, a resumed or
    repeated run) loads them instead of compiling; returns the folder, or None where there is none.

    The folder is `<backend>-<version>-<machine>[-<XLA_FLAGS>]` in $RNN_CLI_COMPILE_CACHE ("off": none), else in
    `compiled/` in the cache folder: no version reads another's programs, no CPU one compiled for
    another (a home folder shared by several machines), whose instructions it may lack, and no XLA_FLAGS
    one compiled under others. Both caches
    write an entry under a temporary name and rename it, and check that a loaded entry's program is the
    one asked for. The
    user's own TF_XLA_FLAGS cache folder wins; a folder that cannot be written, or whose path has a
    space (TF_XLA_FLAGS splits on them), means compiling as before. Runs before the first compilation.
    """
    global _COMPILE_CACHE
    if backend not in ("tensorflow", "jax"):
        return None  # PyTorch's steps are not compiled (docs/performance.md#backends)
    chosen = os.environ.get(COMPILE_CACHE, "")
    if chosen.lower() == "off" or (backend == "tensorflow" and TF_CACHE_FLAG in os.environ.get("TF_XLA_FLAGS", "")):
        return None
    module = __import__(backend)
    name = f"{backend}-{module.__version__}-{machine_tag()}{flags_tag()}"
    folder = (Path(chosen) if chosen else cache_dir() / "compiled") / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if backend == "tensorflow":  # JAX's cache evicts its least recently used entries itself
            prune(folder, COMPILE_CACHE_BYTES)
    except OSError:
        return None
    if not os.access(folder, os.W_OK) or (backend == "tensorflow" and any(c.isspace() for c in str(folder))):
        return None
    if backend == "tensorflow":
        os.environ["TF_XLA_FLAGS"] = f"{os.environ.get('TF_XLA_FLAGS', '')} {TF_CACHE_FLAG}={folder}".strip()
    else:
        import jax

        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)  # a step, not Keras' small ops
        if has_filelock():  # JAX evicts under its lock, and refuses a limit without one: unlimited then
            jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_BYTES)
    _COMPILE_CACHE = folder
    return folder


def has_filelock() -> bool:
    try:
        import filelock  # noqa: F401 - the jax extra brings it; a plain JAX install may not
    except ImportError:
        return False
    return True


def machine_tag() -> str:
    """A short hash of this CPU's architecture, model and instruction-set features."""
    identity = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if not line.strip():
                    break  # the first processor's block says it for all
                if line.split(":")[0].strip() in ("model name", "flags", "Features", "CPU part"):
                    identity += line
    except OSError:
        identity += platform.processor()  # not Linux
    return hashlib.sha256(identity.encode()).hexdigest()[:8]


def flags_tag() -> str:
    """"-" and a short hash of XLA_FLAGS, "" without them: XLA's flags change what it compiles (its CPU emitters,
    rnn_cli.process_settings.choose_emitters), and TensorFlow's cache does not tell its entries apart by them."""
    flags = " ".join(os.environ.get("XLA_FLAGS", "").split())
    return f"-{hashlib.sha256(flags.encode()).hexdigest()[:8]}" if flags else ""


def compile_cache_folder() -> Path | None:
    """The folder `compile_cache` set for this process (run.json's fast_path), or None."""
    return _COMPILE_CACHE


def prune(folder: Path, limit: int) -> None:
    """Delete the oldest-written entries of `folder` beyond `limit` bytes in all, and temporary files
    that a killed process left half-written."""
    now, entries = time.time(), []
    for path in folder.iterdir():
        try:
            stat = path.stat()
        except OSError:
            continue  # another process renamed or deleted it meanwhile
        if not path.is_file():
            continue
        if ".tmp" in path.name:
            if now - stat.st_mtime > STALE_SECONDS:
                path.unlink(missing_ok=True)
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size
