"""The data a config names, as training needs it: IMDB from Keras' download or an aclImdb folder or
archive (`rnn_cli.aclimdb`), or a user's own CSV, TSV, JSON Lines file or class folders (`rnn_cli.own_files`),
encoded (`rnn_cli.corpus`), cached (`rnn_cli.cache`) and split three ways."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from rnn_cli import aclimdb
from rnn_cli.aclimdb import ARCHIVES, LABELS, is_archive
from rnn_cli.cache import cached
from rnn_cli.config import DataConfig
from rnn_cli.corpus import BINARY, SPLITS, Corpus, Reviews, Vocabulary, build_corpus, encode_rows
from rnn_cli.encoding import FIRST_WORD
from rnn_cli.errors import DataError
from rnn_cli.own_files import (class_indices, class_order, iter_rows, read_class_folders, read_rows,
                               split_by_group, stratified_split)

DATASET_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"  # the Large Movie Review Dataset
DOWNLOAD_TIMEOUT = 60  # seconds Keras' download may wait for the server's next word (not for the whole file)
# What each source's --data is, for messages.
EXPECTED = {"aclimdb": "an aclImdb folder or aclImdb_v1.tar.gz", "csv": "a .csv file with a header row",
            "tsv": "a .tsv file with a header row", "jsonl": "a .jsonl file, one JSON object per line",
            "folder": "a folder of train/<class>/*.txt and test/<class>/*.txt"}
DATA_KINDS = ("a .csv, .tsv or .jsonl file of texts and labels, an aclImdb folder or its .tar.gz archive, or a "
              "folder of train/<class>/*.txt and test/<class>/*.txt")
# aclImdb numbers each label's reviews movie by movie (docs/data.md, benchmarks/movie_order.py).
# validation_by: movie holds out blocks of this many consecutive numbers, four times the most reviews
# the dataset keeps of one movie (30), so only the movies at a block's edges can be cut.
MOVIE_BLOCK = 125


@dataclass(frozen=True)
class Splits:
    """What training needs: reviews split three ways, and the vocabulary that encoded them."""

    train: Reviews
    val: Reviews
    test: Reviews
    vocabulary: Vocabulary
    source: str
    skipped: int
    load_seconds: float
    classes: tuple[str, ...] = BINARY
    test_lines: np.ndarray | None = None

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test),
                "vocabulary": self.vocabulary.size, "skipped": self.skipped}


def load_data(config: DataConfig, vocabulary: Vocabulary | None = None) -> Splits:
    """Load the data as the config says, split off validation, and apply `limit`.

    Args:
        config: the data section of the run's config.
        vocabulary: encode with this one (a trained run's) instead of the corpus' own top words.

    Returns:
        Train, validation and test reviews plus their vocabulary.

    Raises:
        DataError: the source is missing, corrupt, of the wrong layout, or needs a network.
    """
    started = time.perf_counter()
    corpus = load_corpus(config)
    if vocabulary is None:
        vocabulary = Vocabulary(corpus.words[: max(config.num_words - FIRST_WORD, 0)])
    train, test = corpus.encoded(vocabulary)
    numbers, groups = corpus.train_numbers, corpus.train_groups
    if config.validation_by == "movie" and numbers is None:
        raise DataError(f"{config.path}: validation_by: movie needs the training reviews' numbers, from "
                        f"files named <number>_<rating>.txt as in aclImdb; use validation_by: review")
    rng = np.random.default_rng(config.seed)
    if config.limit is not None:
        count = len(corpus.classes)
        sample = balanced_sample(train.labels, config.limit, rng, count)
        train, numbers = train.take(sample), None if numbers is None else numbers[sample]
        groups = None if groups is None else groups[sample]
        test = test.take(balanced_sample(test.labels, config.limit, rng, count))
    if config.validation_by == "movie":
        kept, held_out = split_by_movie(train.labels, numbers, config.validation_split, rng)
    elif config.group_column is not None:
        kept, held_out = split_by_group(groups, config.validation_split, rng)
    else:
        # The sources are sorted by label: a plain "last 20%" would be all one class.
        order = rng.permutation(len(train))
        n_val = int(round(len(train) * config.validation_split))
        kept, held_out = order[n_val:], order[:n_val]
    if len(held_out) == 0 or len(kept) == 0 or len(test) == 0:
        raise DataError(f"data.validation_split {config.validation_split} of {len(train)} training reviews "
                        f"leaves {len(kept)} to train on and {len(held_out)} to validate, with {len(test)} test "
                        f"reviews; each needs at least one (a larger --limit, or another validation_split)")
    return Splits(train=train.take(kept), val=train.take(held_out), test=test,
                  vocabulary=vocabulary, source=corpus.source, skipped=corpus.skipped,
                  load_seconds=time.perf_counter() - started, classes=corpus.classes,
                  test_lines=corpus.test_lines if config.limit is None else None)


def load_corpus(config: DataConfig) -> Corpus:
    """The source's corpus, encoded by its own training words."""
    if config.source == "keras":
        return load_keras_corpus(config.num_words)
    if config.source == "aclimdb":
        return load_aclimdb(config.path)
    return load_own(config)


def split_by_movie(labels: np.ndarray, numbers: np.ndarray, share: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows (each in a seeded random order), validation made of whole movies.

    Per label, `share` of its reviews are held out as blocks of MOVIE_BLOCK consecutive review
    numbers, blocks drawn at random; the last block drawn is cut to the count wanted, at one place.
    """
    held_out = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rows = rows[np.argsort(numbers[rows], kind="stable")]
        blocks = numbers[rows] // MOVIE_BLOCK
        wanted = int(round(len(rows) * share))
        for block in rng.permutation(np.unique(blocks)):
            if wanted == 0:
                break
            members = rows[blocks == block][:wanted]
            held_out.append(members)
            wanted -= len(members)
    held_out = np.concatenate(held_out or [np.zeros(0, dtype=np.int64)])
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return rng.permutation(kept), rng.permutation(held_out)


def balanced_sample(labels: np.ndarray, n: int, rng: np.random.Generator, classes: int = 2) -> np.ndarray:
    """Indices of n reviews, as many of each class as can be (the last classes take the remainder), sorted."""
    picks = []
    for label in range(classes):
        want = n // classes + (1 if label >= classes - n % classes else 0)
        members = np.flatnonzero(labels == label)
        picks.append(rng.choice(members, size=min(want, len(members)), replace=False))
    return np.sort(np.concatenate(picks))


def load_keras_corpus(num_words: int) -> Corpus:
    """IMDB as Keras ships it (downloaded once into ~/.keras/datasets)."""
    import keras

    previous = socket.getdefaulttimeout()
    # Keras downloads with urllib and no timeout: a server that stops answering would hang the run for good.
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        # index_from=2 puts the most frequent word at 3, the same convention as aclimdb.
        (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(
            num_words=num_words, index_from=FIRST_WORD - 1)
        word_index = keras.datasets.imdb.get_word_index()
    except Exception as err:  # Keras reports a failed download as a bare Exception.
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "timed out" in first:
            first = f"no answer within {DOWNLOAD_TIMEOUT} s: {first}"
        raise DataError(
            f"could not load IMDB through Keras ({first}); without network, point at a local copy "
            f"of the official dataset, {DATASET_URL} (84 MB, fetched on a machine that has network): "
            f"--data PATH/aclImdb_v1.tar.gz (or an extracted aclImdb folder)"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    words = tuple(sorted(word_index, key=word_index.get))
    return Corpus(words, Reviews.from_lists(x_train, y_train), Reviews.from_lists(x_test, y_test),
                  source="keras")


def load_aclimdb(path: str | Path) -> Corpus:
    """The official Large Movie Review Dataset, as a folder or .tar.gz, through a disk cache."""
    path = check_source(path)

    def build() -> Corpus:
        texts, numbers, skipped = aclimdb.read_reviews(path)
        return build_corpus(texts, source=f"aclimdb:{path.resolve()}", skipped=skipped, train_numbers=numbers)

    return cached(path, "aclimdb", _source_version(path, aclimdb.review_folders), build)


def load_own(config: DataConfig) -> Corpus:
    """A user's own labelled texts (`rnn_cli.own_files`), through a disk cache like aclImdb's."""
    path = check_source(config.path, config.source)
    options = [f"text={config.text_column}", f"label={config.label_column}", f"positive={config.positive_label}",
               f"group={config.group_column}", f"classes={config.classes}"]
    if config.test_path is not None:
        test = check_source(config.test_path, config.source)
        options.append(f"test={test.resolve()}:{test.stat().st_size}:{test.stat().st_mtime_ns}")
    elif config.source != "folder":
        options.append(f"test_split={config.test_split}:{config.seed}")
    return cached(path, config.source, [*options, *_source_version(path, _class_folders)],
                  lambda: _build_own(config, path))


def _build_own(config: DataConfig, path: Path) -> Corpus:
    """Classes ordered, the test rows read or held out by class; then every row encoded."""
    source = f"{config.source}:{path.resolve()}"
    if config.source == "folder":
        rows, skipped = read_class_folders(path, aclimdb.MAX_REVIEW_BYTES)
        train, test = rows["train"], rows["test"]
        classes = class_order(train.labels, config.positive_label, path / "train", config.classes)
        y_train, y_test = class_indices(train, classes, path / "train"), class_indices(test, classes, path / "test")
        texts = {"train": list(zip(train.texts, y_train.tolist())), "test": list(zip(test.texts, y_test.tolist()))}
        return build_corpus(texts, source=source, skipped=skipped + train.empty + test.empty, classes=classes)
    return _encode_table(config, path, source)


def _encode_table(config: DataConfig, path: Path, source: str) -> Corpus:
    """A file read twice, so no text is kept: first its labels (and groups) to order the classes and
    hold out the test rows, then its texts, encoded as they come."""
    columns = (config.source, config.text_column, config.label_column)
    scan = read_rows(path, *columns, config.group_column, texts=False)
    classes = class_order(scan.labels, config.positive_label, path, config.classes)
    y = class_indices(scan, classes, path)
    groups = np.array(scan.groups, dtype=str) if scan.groups else None
    test_lines, skipped = None, scan.empty
    if config.test_path is not None:
        test_path = Path(config.test_path).expanduser()
        test_scan = read_rows(test_path, *columns, texts=False)
        y_test, skipped = class_indices(test_scan, classes, test_path), skipped + test_scan.empty
        # (file, each row's split, each row's class): every row of the training file trains.
        files = [(path, np.full(len(y), "train"), y), (test_path, np.full(len(y_test), "test"), y_test)]
    else:
        kept, held_out = stratified_split(y, config.test_split, np.random.default_rng(config.seed), classes, path)
        split_of = np.full(len(y), "train")
        split_of[held_out] = "test"
        test_lines, groups = np.array(scan.lines)[held_out], None if groups is None else groups[kept]
        files = [(path, split_of, y)]

    def encoded_rows():
        for file, splits, labels in files:
            try:  # the second pass meets the rows of the first, or the file changed in between
                for split, label, (text, *_) in zip(splits, labels, iter_rows(file, *columns), strict=True):
                    yield str(split), text, int(label)
            except ValueError:
                raise DataError(f"{file}: changed while it was read; try again") from None

    words, reviews = encode_rows(encoded_rows())
    return Corpus(words, reviews["train"], reviews["test"], source=source, skipped=skipped, classes=classes,
                  test_lines=test_lines, train_groups=groups)


def source_of(path: Path) -> str:
    """The source `--data PATH` means, from the file's extension or the folder's layout."""
    name = path.name.lower()
    for source, endings in (("csv", (".csv",)), ("tsv", (".tsv", ".tab")), ("jsonl", (".jsonl", ".ndjson"))):
        if name.endswith(endings):
            return source
    if path.is_dir():
        root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
        if not all((root / "train" / label).is_dir() for label in LABELS) and (path / "train").is_dir():
            return "folder"
    elif path.is_file() and not name.endswith(ARCHIVES) and not is_archive(path):
        raise DataError(f"--data {path}: cannot read a {path.suffix or 'file without extension'} file; --data takes "
                        f"{DATA_KINDS}")
    return "aclimdb"


def check_source(path: str | Path, source: str = "aclimdb") -> Path:
    """`path` if it can be `source`'s data (checked before TensorFlow loads), else one line."""
    path, expected = Path(path).expanduser(), EXPECTED[source]
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; expected {expected}")
    if not (path.is_dir() or path.is_file()):
        raise DataError(f"{path}: not a folder nor a regular file; expected {expected}")
    return path


def _source_version(path: Path, folders) -> list[str]:
    """What a cache entry of `path` depends on: the file's size and time, or every review file's
    (in the `folders` of a folder)."""
    path = path.resolve()
    if not path.is_dir():
        return [f"{path.stat().st_size}:{path.stat().st_mtime_ns}"]
    return [f"{split}/{label}:{entry.name}:{entry.stat(follow_symlinks=False).st_size}:"
            f"{entry.stat(follow_symlinks=False).st_mtime_ns}"
            for split, label, folder in folders(path)
            for entry in sorted(os.scandir(folder), key=lambda entry: entry.name)]


def _class_folders(path: Path) -> Iterator[tuple[str, str, Path]]:
    """The class folders of a `folder` source: train/<class>, test/<class>."""
    for split in SPLITS:
        if (path / split).is_dir():
            for label in sorted(os.scandir(path / split), key=lambda entry: entry.name):
                if label.is_dir(follow_symlinks=False):
                    yield split, label.name, Path(label.path)


def data_overrides(data: Path | None, limit: int | None) -> list[str]:
    """`rnn train --data PATH --limit N` (and `rnn_cli.train(data=..., limit=...)`) as config overrides."""
    items = []
    if data is not None:
        items += [f"data.source={source_of(data)}", f"data.path={json.dumps(str(data.resolve()))}"]
    if limit is not None:
        items.append(f"data.limit={limit}")
    return items
