"""The Large Movie Review Dataset's files (aclImdb: train/pos, train/neg, test/pos, test/neg, one review per
<number>_<rating>.txt), read from its folder or streamed from its archive, never extracted to disk."""

from __future__ import annotations

import re
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from rnn_cli.corpus import SPLITS
from rnn_cli.errors import DataError
from rnn_cli.own_files import read_text_files

LABELS = {"neg": 0, "pos": 1}
ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")  # what aclimdb reads, as tarfile does
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/([^/]+\.txt)$")
NUMBERED_FILE = re.compile(r"(\d+)_\d+\.txt")  # <review number>_<rating>.txt
# aclImdb's longest review is about 14 KB: a larger file is no review (and reading it whole could
# exhaust memory); skipped and counted, like a review that is not UTF-8.
MAX_REVIEW_BYTES = 1 << 20


def is_archive(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False  # unreadable: check_source and the loader say why


def read_reviews(path: Path) -> tuple[dict[str, list[tuple[str, int]]], np.ndarray | None, int]:
    """(text, label) pairs per split in a stable order, the training reviews' numbers (None unless
    every file is named <number>_<rating>.txt) and how many reviews were not UTF-8."""
    found = {(split, label): [] for split in SPLITS for label in LABELS}
    skipped = 0
    for split, label, name, raw in iter_review_files(path):
        try:
            found[split, label].append((name, raw.decode("utf-8")))
        except (UnicodeDecodeError, AttributeError):  # AttributeError: None, a file not read (see iter_review_files)
            skipped += 1
    for (split, label), items in found.items():
        if not items:
            raise DataError(f"{path}: no reviews in {split}/{label}; expected the aclImdb layout "
                            f"train/pos, train/neg, test/pos, test/neg with one .txt per review")
    for items in found.values():
        items.sort()
    texts = {split: [(text, LABELS[label]) for label in LABELS for _, text in found[split, label]]
             for split in SPLITS}
    names = [name for label in LABELS for name, _ in found["train", label]]
    numbered = [NUMBERED_FILE.fullmatch(name) for name in names]
    numbers = np.array([int(m[1]) for m in numbered], dtype=np.int64) if all(numbered) else None
    return texts, numbers, skipped


def iter_review_files(path: Path) -> Iterator[tuple[str, str, str, bytes | None]]:
    """(split, label, file name, bytes) of every review in an aclImdb folder or archive; bytes None
    for a file that is not read: over MAX_REVIEW_BYTES, or in a folder not a regular file (a link, a
    FIFO, a device)."""
    if path.is_dir():
        yield from _iter_folder(path)
    else:
        yield from _iter_archive(path)


def _iter_folder(path: Path) -> Iterator[tuple[str, str, str, bytes | None]]:
    for split, label, folder in review_folders(path):
        for name, raw in read_text_files(folder, MAX_REVIEW_BYTES):
            yield split, label, name, raw


def review_folders(path: Path) -> Iterator[tuple[str, str, Path]]:
    """The four review folders of an aclImdb folder, each inside it (no link out of it)."""
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    for split in SPLITS:
        for label in LABELS:
            folder = root / split / label
            if not folder.is_dir():
                raise DataError(f"{path}: missing folder {split}/{label}; expected the aclImdb "
                                f"layout train/pos, train/neg, test/pos, test/neg")
            if not folder.resolve().is_relative_to(root.resolve()):
                raise DataError(f"{path}: {split}/{label} links out of the dataset folder, to "
                                f"{folder.resolve()}; copy the reviews in instead")
            yield split, label, folder


def _iter_archive(path: Path) -> Iterator[tuple[str, str, str, bytes]]:
    """Stream review files out of a tar archive; nothing is ever extracted to disk."""
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                match = _MEMBER.search(member.name)
                if match and member.isfile():
                    # The member's size is known before it is read: an oversized one is skipped unread.
                    raw = archive.extractfile(member).read() if member.size <= MAX_REVIEW_BYTES else None
                    yield match[1], match[2], match[3], raw
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"{path}: not a readable aclImdb archive, corrupt or truncated ({err})") from None
