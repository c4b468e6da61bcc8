"""model.embedding_file: word vectors a user brings (GloVe, word2vec or fastText text format, `.gz` too)
for the words of a run's vocabulary.

The text format is a word and its numbers per line, separated by spaces; word2vec and fastText put a
"count dimension" line first, GloVe does not. Words are matched as the tokeniser writes them, lower
case: a file's own lower-case entry wins over another case of the same word (word2vec's vectors
are cased). Only the vocabulary's words are parsed, so a large file costs one read.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Iterator

import numpy as np

from rnn_cli.errors import ConfigError

KEY = "model.embedding_file"


def open_text(path: Path) -> io.TextIOBase:
    opener = gzip.open if path.name.endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8", errors="replace", newline="\n")


def check_vectors(path: str | Path, dim: int) -> Path:
    """The file, once it is found readable with vectors of `dim` numbers; one line naming the key otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{KEY}: {path}: no such file")
    try:
        first = next(entries(path), None)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ConfigError(f"{KEY}: {path}: cannot read it ({err})") from None
    if first is None:
        raise ConfigError(f"{KEY}: {path}: holds no word vectors")
    found = len(first[1])
    if found != dim:
        raise ConfigError(f"{KEY}: {path} holds {found}-dimensional vectors but model.embedding_dim is {dim}; "
                          f"set model.embedding_dim: {found}")
    return path


def entries(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(word, its numbers as text, line number) for every vector line, the header skipped."""
    with open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.rstrip("\n\r ").split(" ")
            if number == 1 and len(parts) == 2 and all(part.isdigit() for part in parts):
                continue  # word2vec / fastText: "count dimension"
            if len(parts) < 2:
                continue
            yield parts[0], parts[1:], number


def read_vectors(path: str | Path, index: dict[str, int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows (token ids) of `index`'s words the file covers and their vectors, (n,) and (n, dim) float32."""
    path = Path(path).expanduser()
    found: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    for word, numbers, number in entries(path):
        row = index.get(word.lower())
        if row is None or row in exact or (row in found and word != word.lower()):
            continue
        if len(numbers) != dim:
            raise ConfigError(f"{KEY}: {path}, line {number}: {len(numbers)} numbers, expected {dim}")
        try:
            found[row] = np.asarray(numbers, dtype=np.float32)
        except ValueError:
            raise ConfigError(f"{KEY}: {path}, line {number}: not all numbers after the word") from None
        if not np.isfinite(found[row]).all():
            raise ConfigError(f"{KEY}: {path}, line {number}: a number that is not finite")
        if word == word.lower():
            exact.add(row)
    rows = np.fromiter(found, dtype=np.int64, count=len(found))
    return rows, (np.stack([found[row] for row in rows]) if len(rows) else np.zeros((0, dim), np.float32))
