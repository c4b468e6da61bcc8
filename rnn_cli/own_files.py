"""A user's own labelled texts: CSV, TSV and JSON Lines files of a text and a label per row, and class
folders (train/<class>/*.txt, test/<class>/*.txt). Each reader gives rows, one line per bad input
naming the file and the line; `rnn_cli.data` encodes them."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnn_cli.errors import DataError, UserError
from rnn_cli.parsing import excerpt, load_json

# csv's default field limit (128 KiB) is below the longest text it should take.
csv.field_size_limit(16 << 20)


@dataclass
class Rows:
    """Texts and their labels as read, with the file line of each (for messages and the run record)."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # with a group column
    empty: int = 0  # rows whose text was empty: skipped and counted

    def add(self, text: str, label: str, line: int, group: str | None = None) -> None:
        """A row; one whose text is empty is only counted."""
        if not text.strip():
            self.empty += 1
            return
        self.texts.append(text)
        self.labels.append(label)
        self.lines.append(line)
        if group is not None:
            self.groups.append(group)

    def take(self, rows: np.ndarray) -> Rows:
        """The rows at `rows`, in that order."""
        pick = (lambda values: [values[i] for i in rows] if values else [])
        return Rows(pick(self.texts), pick(self.labels), pick(self.lines), pick(self.groups))


def read_rows(path: Path, kind: str, text_column: str, label_column: str, group_column: str | None = None,
              texts: bool = True) -> Rows:
    """The rows of a CSV, TSV (a header row naming the columns) or JSON Lines file (one object per
    line); `texts` False keeps everything but the texts (a first pass over a large file)."""
    rows = Rows()
    for text, label, line, group in iter_rows(path, kind, text_column, label_column, group_column, rows):
        rows.add(text if texts else "-", label, line, group)
    if not rows.texts:
        raise DataError(f"{path}: no rows with a text" + (f" ({rows.empty} with an empty one)" if rows.empty else ""))
    return rows


def check_columns(path: Path, kind: str, text_column: str, label_column: str, group_column: str | None = None) -> None:
    """Read the header (CSV, TSV) and the first row, so that a missing column or key is one line
    before TensorFlow loads."""
    rows = iter_rows(path, kind, text_column, label_column, group_column)
    next(rows, None)
    rows.close()


def iter_rows(path: Path, kind: str, text_column: str, label_column: str, group_column: str | None = None,
              counts: Rows | None = None):
    """(text, label, line, group) of every row with a text, read as they come; `counts.empty` counts
    the rows whose text is empty."""
    columns = [text_column, label_column, *([group_column] if group_column else [])]
    counts = counts if counts is not None else Rows()
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:  # utf-8-sig: a BOM is no column name
            rows = _read_jsonl(file, path, columns) if kind == "jsonl" else (
                _read_delimited(file, path, "\t" if kind == "tsv" else ",", columns))
            for text, label, line, group in rows:
                if not label:  # a class named '' is a mistake in the file, not a class
                    raise DataError(f"{path}, line {line}: the label is empty; give every row a label, or remove "
                                    "the row")
                if text.strip():
                    yield text, label, line, group
                else:
                    counts.empty += 1
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start} of a line); save the file as UTF-8") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None


def _read_delimited(file, path: Path, delimiter: str, columns: list[str]):
    reader = csv.reader(file, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file; expected a header row naming the columns, then one row per text")
        for name in columns:
            if name not in header:
                named = ", ".join(excerpt(column) for column in header[:20]) + (", ..." if len(header) > 20 else "")
                raise DataError(f"{path}: no column {excerpt(name)}; the file has {named} "
                                f"(set data.text_column, data.label_column, data.group_column)")
            if header.count(name) > 1:  # which one is meant cannot be known
                at = [i + 1 for i, column in enumerate(header) if column == name]
                raise DataError(f"{path}: the header names column {excerpt(name)} {len(at)} times (columns "
                                f"{', '.join(map(str, at))}); rename all but one")
        at = [header.index(name) for name in columns]
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise DataError(f"{path}, line {reader.line_num}: {len(row)} field(s) where the header has "
                                f"{len(header)}; quote texts that hold the delimiter")
            yield row[at[0]], row[at[1]].strip(), reader.line_num, row[at[2]] if len(at) > 2 else None
    except csv.Error as err:
        raise DataError(f"{path}, line {reader.line_num}: malformed row ({err})") from None


def _read_jsonl(file, path: Path, columns: list[str]):
    text_column, label_column = columns[:2]
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            record = load_json(line, f"{path}, line {number}", unique_keys=True)
        except ValueError as err:
            raise DataError(f"{path}, line {number}: not JSON ({err})") from None
        except UserError as err:
            raise DataError(str(err)) from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: a JSON {type(record).__name__}, not an object with "
                            f"keys {text_column!r} and {label_column!r}")
        for key in columns:
            if key not in record:
                raise DataError(f"{path}, line {number}: no key {key!r}; the object has "
                                f"{', '.join(map(excerpt, list(record)[:20])) or 'no keys'}")
        text, label = record[text_column], record[label_column]
        if not isinstance(text, str):
            raise DataError(f"{path}, line {number}: {text_column!r} is a {type(text).__name__}, not a string")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise DataError(f"{path}, line {number}: {label_column!r} is {excerpt(label)}; labels are strings or "
                            "integers")
        yield text, str(label).strip(), number, str(record[columns[2]]) if len(columns) > 2 else None


def read_text_files(folder: Path, max_bytes: int):
    """(name, bytes) of each .txt file in `folder`, by name; bytes None for a file not read: not a
    regular file (a link, a FIFO, a device) or over `max_bytes` (checked before and while reading)."""
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if not entry.name.endswith(".txt"):
            continue
        if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_size > max_bytes:
            yield entry.name, None
            continue
        with open(entry.path, "rb") as file:
            raw = file.read(max_bytes + 1)  # the file may have grown since
        yield entry.name, raw if len(raw) <= max_bytes else None


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
            for _, raw in read_text_files(folder / label, max_bytes):
                try:
                    rows.add(raw.decode("utf-8"), label, 0)
                except (UnicodeDecodeError, AttributeError):  # AttributeError: None, a file not read
                    skipped += 1
        splits[split] = rows
    return splits, skipped


def class_order(labels: list[str], positive_label: str | None, where: Path,
                given: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The classes in their fixed order: `given` (data.classes), checked against the labels; else sorted (as
    numbers when every label is an integer), with two the positive one second."""
    names = set(labels)
    if given is not None:
        unknown, unseen = sorted(names - set(given)), [name for name in given if name not in names]
        if unknown or unseen:
            said = (f"label(s) {', '.join(map(excerpt, unknown[:5]))} not among them" if unknown
                    else f"no row of {', '.join(map(excerpt, unseen[:5]))}")
            raise DataError(f"data.classes {list(given)}: {where} has {said}; list every label of the data once")
        return tuple(given)
    numeric = all(re.fullmatch(r"-?[0-9]+", name) for name in names)  # int() takes "²", "٣" too
    classes = tuple(sorted(names, key=lambda name: (int(name), name) if numeric else (0, name)))
    if len(classes) < 2:
        raise DataError(f"{where}: one class only ({excerpt(classes[0])}); a classifier needs two or more")
    if positive_label is not None:
        if len(classes) > 2:
            raise DataError(f"data.positive_label {positive_label!r}: only for two classes; {where} has "
                            f"{len(classes)}")
        if positive_label not in classes:
            raise DataError(f"data.positive_label {excerpt(positive_label)}: not a class of {where} "
                            f"({', '.join(map(excerpt, classes[:20]))})")
        classes = tuple(sorted(classes, key=lambda name: name == positive_label))
    return classes


def class_indices(rows: Rows, classes: tuple[str, ...], where: Path) -> np.ndarray:
    """Each row's class index; a label the training data never had is one line naming its row."""
    index = {name: i for i, name in enumerate(classes)}
    for label, line in zip(rows.labels, rows.lines):
        if label not in index:
            at = f", line {line}" if line else ""
            raise DataError(f"{where}{at}: label {excerpt(label)} is not among the training data's classes "
                            f"({', '.join(map(excerpt, classes[:20]))})")
    return np.array([index[label] for label in rows.labels], dtype=np.int64)


def stratified_split(labels: np.ndarray, share: float, rng: np.random.Generator, classes: tuple[str, ...],
                     where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept and rows held out (`share` of each class, at least one), each sorted."""
    kept, held_out = [], []
    for label in range(len(classes)):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if len(rows) < 2:
            raise DataError(f"{where}: class {excerpt(classes[label])} has {len(rows)} row(s), too few to hold some "
                            f"out for testing (data.test_split); add rows, or give data.test_path")
        n = min(max(int(round(len(rows) * share)), 1), len(rows) - 1)
        held_out.append(rows[:n])
        kept.append(rows[n:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held_out))


def split_by_group(groups: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept and rows held out, whole groups (drawn at random) held out until `share` of the rows are."""
    names, of_row, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    held, wanted, total = [], int(round(len(groups) * share)), 0
    for group in rng.permutation(len(names)):
        if total >= wanted:
            break
        held.append(group)
        total += sizes[group]
    out = np.isin(of_row, held)
    return rng.permutation(np.flatnonzero(~out)), rng.permutation(np.flatnonzero(out))
