"""A user's own labelled texts: CSV, TSV and JSON Lines files of a text and a label per row, and class
folders (train/<class>/*.txt, test/<class>/*.txt). Each reader gives rows, one line per bad input
naming the file and the line; `rnn_cli.data` encodes them."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnn_cli.errors import DataError

# csv's default field limit (128 KiB) is below the longest text it should take.
csv.field_size_limit(16 << 20)


@dataclass
class Rows:
    """Texts and their labels as read, with the file line of each (for messages and the run record)."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    empty: int = 0  # rows whose text was empty: skipped and counted

    def add(self, text: str, label: str, line: int) -> None:
        if not text.strip():
            self.empty += 1
            return
        self.texts.append(text)
        self.labels.append(label)
        self.lines.append(line)


def read_rows(path: Path, kind: str, text_column: str, label_column: str) -> Rows:
    """The rows of a CSV, TSV (a header row naming the columns) or JSON Lines file (one object per line)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:  # utf-8-sig: a BOM is no column name
            rows = _read_jsonl(file, path, text_column, label_column) if kind == "jsonl" else (
                _read_delimited(file, path, "\t" if kind == "tsv" else ",", text_column, label_column))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start} of a line); save the file as UTF-8") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if not rows.texts:
        raise DataError(f"{path}: no rows with a text" + (f" ({rows.empty} with an empty one)" if rows.empty else ""))
    return rows


def _read_delimited(file, path: Path, delimiter: str, text_column: str, label_column: str) -> Rows:
    reader = csv.reader(file, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file; expected a header row naming the columns, then one row per text")
        for name in (text_column, label_column):
            if name not in header:
                raise DataError(f"{path}: no column {name!r}; the file has {', '.join(map(repr, header))} "
                                f"(set data.text_column and data.label_column)")
        text_at, label_at = header.index(text_column), header.index(label_column)
        rows = Rows()
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise DataError(f"{path}, line {reader.line_num}: {len(row)} field(s) where the header has "
                                f"{len(header)}; quote texts that hold the delimiter")
            rows.add(row[text_at], row[label_at].strip(), reader.line_num)
    except csv.Error as err:
        raise DataError(f"{path}, line {reader.line_num}: malformed row ({err})") from None
    return rows


def _read_jsonl(file, path: Path, text_column: str, label_column: str) -> Rows:
    rows = Rows()
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise DataError(f"{path}, line {number}: not JSON ({err})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: a JSON {type(record).__name__}, not an object with "
                            f"keys {text_column!r} and {label_column!r}")
        for key in (text_column, label_column):
            if key not in record:
                raise DataError(f"{path}, line {number}: no key {key!r}; the object has "
                                f"{', '.join(map(repr, record)) or 'no keys'}")
        text, label = record[text_column], record[label_column]
        if not isinstance(text, str):
            raise DataError(f"{path}, line {number}: {text_column!r} is a {type(text).__name__}, not a string")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise DataError(f"{path}, line {number}: {label_column!r} is {label!r}; labels are strings or integers")
        rows.add(text, str(label).strip(), number)
    return rows


def read_class_folders(path: Path, max_bytes: int) -> tuple[dict[str, Rows], int]:
    """train/<class>/*.txt and test/<class>/*.txt under `path`: rows per split, and the files
    skipped (not UTF-8, over `max_bytes`, not a regular file)."""
    splits, skipped = {}, 0
    for split in ("train", "test"):
        folder = path / split
        if not folder.is_dir():
            raise DataError(f"{path}: no {split}/ folder; expected train/<class>/*.txt and test/<class>/*.txt")
        rows = Rows()
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False))
        if not classes:
            raise DataError(f"{path}: {split}/ has no class folders; expected {split}/<class>/*.txt")
        for label in classes:
            for entry in sorted(os.scandir(folder / label), key=lambda entry: entry.name):
                if not entry.name.endswith(".txt"):
                    continue
                if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_size > max_bytes:
                    skipped += 1
                    continue
                try:
                    rows.add(Path(entry.path).read_bytes().decode("utf-8"), label, 0)
                except UnicodeDecodeError:
                    skipped += 1
        splits[split] = rows
    return splits, skipped


def class_order(labels: list[str], positive_label: str | None, where: Path) -> tuple[str, ...]:
    """The classes in their fixed order: sorted (as numbers when every label is an integer); with two,
    the positive one second."""
    names = set(labels)
    numeric = all(name.lstrip("-").isdigit() for name in names)
    classes = tuple(sorted(names, key=lambda name: (int(name), name) if numeric else (0, name)))
    if len(classes) < 2:
        raise DataError(f"{where}: one class only ({classes[0]!r}); a classifier needs two or more")
    if positive_label is not None:
        if len(classes) > 2:
            raise DataError(f"data.positive_label {positive_label!r}: only for two classes; {where} has "
                            f"{len(classes)}")
        if positive_label not in classes:
            raise DataError(f"data.positive_label {positive_label!r}: not a class of {where} "
                            f"({', '.join(map(repr, classes))})")
        classes = tuple(sorted(classes, key=lambda name: name == positive_label))
    return classes


def class_indices(rows: Rows, classes: tuple[str, ...], where: Path) -> np.ndarray:
    """Each row's class index; a label the training data never had is one line naming its row."""
    index = {name: i for i, name in enumerate(classes)}
    for label, line in zip(rows.labels, rows.lines):
        if label not in index:
            at = f", line {line}" if line else ""
            raise DataError(f"{where}{at}: label {label!r} is not among the training data's classes "
                            f"({', '.join(map(repr, classes))})")
    return np.array([index[label] for label in rows.labels], dtype=np.int64)


def stratified_split(labels: np.ndarray, share: float, rng: np.random.Generator, classes: tuple[str, ...],
                     where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept and rows held out (`share` of each class, at least one), each sorted."""
    kept, held_out = [], []
    for label in range(len(classes)):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if len(rows) < 2:
            raise DataError(f"{where}: class {classes[label]!r} has {len(rows)} row(s), too few to hold some "
                            f"out for testing (data.test_split); add rows, or give data.test_path")
        n = min(max(int(round(len(rows) * share)), 1), len(rows) - 1)
        held_out.append(rows[:n])
        kept.append(rows[n:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held_out))
