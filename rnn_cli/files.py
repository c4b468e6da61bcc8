"""Atomic file writes, JSON reading and the cache folder: every file the tool writes goes through
`atomic_path`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from rnn_cli import stopping
from rnn_cli.errors import StorageError, UserError
from rnn_cli.parsing import load_json


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary path beside `path`, with its suffixes (Keras and savefig go by them),
    renamed to `path` when the block ends; removed if it raises. A reader never sees half a file."""
    path, tmp = Path(path), None
    try:
        # A stop (Ctrl-C, SIGTERM) raised between the file's creation and `tmp` naming it would leave it
        # behind: it waits for the end of this block, where `tmp` is known.
        with stopping.deferred():
            handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix="".join(path.suffixes))
            os.close(handle)
        yield Path(tmp)
        _publish(tmp, path)
    except OSError as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise storage_error(path, err) from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def temporary_folder(beside: Path) -> Iterator[Path]:
    """A new hidden folder beside `beside` (on its file system, so what is made in it can be renamed into
    place), removed with whatever is left in it when the block ends, however it ends."""
    tmp = None
    try:
        with stopping.deferred():  # as in atomic_path: a stop waits until `tmp` names the new folder
            tmp = tempfile.mkdtemp(dir=Path(beside).parent, prefix=f".{Path(beside).name}.")
        yield Path(tmp)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def replace(source: Path, target: Path) -> None:
    """os.replace, its failure one line naming the file."""
    try:
        os.replace(source, target)
    except OSError as err:
        raise storage_error(target, err) from None


def storage_error(path: Path, err: OSError) -> StorageError:
    """One line naming the file and why it cannot be written (disk full, read-only, permission)."""
    return StorageError(f"{path}: cannot write ({err.strerror or err}); free space or pick a writable folder")


def make_dir(path: Path, exist_ok: bool = True) -> None:
    """mkdir with its parents, its failure one line naming the folder (FileExistsError passes)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except (FileExistsError, NotADirectoryError) as err:
        blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocking is None and isinstance(err, FileExistsError):
            raise  # the folder itself exists, and exist_ok was False: the caller's to say
        raise StorageError(f"{path}: cannot make this folder: {blocking or path} is a file, not a folder; "
                           f"pick another path") from None
    except OSError as err:
        raise storage_error(path, err) from None


def write_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8, newlines as given) through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def write_json(path: Path, payload) -> None:
    write_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path):
    """The JSON in `path`, or a UserError naming the file."""
    try:
        return load_json(Path(path).read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read ({err})") from None


def _publish(tmp: str, path: Path) -> None:
    """Rename a finished temporary file into place with the permissions a plain open() gives."""
    # mkstemp makes files readable by their owner alone; run files are for everyone to read.
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def log_dir() -> Path:
    """Where TensorFlow's own log lines and internal errors' tracebacks go."""
    return cache_dir() / "logs"


def cache_dir() -> Path:
    """Where encoded corpora are kept: $RNN_CLI_CACHE, else the user's cache folder."""
    if os.environ.get("RNN_CLI_CACHE"):
        return Path(os.environ["RNN_CLI_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnn-cli"
