"""Reviews as the model reads them: reviews stored flat, the vocabulary, a source's encoded corpus, and
the one encoder every source uses. The tokeniser, the index conventions and the padding rules are in
`rnn_cli.encoding`. A vocabulary of `num_words` counts the three reserved indices (pad, start, unknown),
so every index is below `num_words`.

Why not Keras' `TextVectorization` and `pad_sequences`: the index convention above (a start token,
so a model trained on Keras' own imdb.npz and one trained on the aclImdb files read alike) is not
TextVectorization's; the encoded corpus is cached on disk as flat arrays, read in a fraction of a
second; the archive is read as a stream without extracting it; and `Reviews.padded` pads a batch
straight from those flat arrays (a test checks it against `pad_sequences`).
"""

from __future__ import annotations

import array
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnn_cli.encoding import FIRST_WORD, OOV, PAD, START, TOKENIZER_VERSION, tokenize
from rnn_cli.errors import DataError, UserError
from rnn_cli.files import write_atomic
from rnn_cli.parsing import load_json

BINARY = ("negative", "positive")  # IMDB's classes, label 0 and 1
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Reviews:
    """Variable-length reviews stored flat: review i is tokens[offsets[i]:offsets[i + 1]]."""

    tokens: np.ndarray  # int32; uint16 once mapped to a vocabulary that fits (half the memory)
    offsets: np.ndarray  # int64, len(labels) + 1
    labels: np.ndarray  # int8, 0 negative, 1 positive

    @classmethod
    def from_lists(cls, sequences, labels) -> Reviews:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(offsets[-1]))
        labels = np.asarray(labels)
        return cls(tokens, offsets, labels.astype(np.int8 if labels.size == 0 or labels.max() < 128 else np.int32))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, indices: np.ndarray) -> Reviews:
        """The reviews at `indices`, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(self.lengths[indices])]).astype(np.int64)
        # One slice per review: ten times faster than one gather index per token on the full split.
        starts, ends = self.offsets[indices].tolist(), self.offsets[indices + 1].tolist()
        tokens = np.concatenate([self.tokens[a:b] for a, b in zip(starts, ends)] or [self.tokens[:0]])
        return Reviews(tokens, offsets, self.labels[indices])

    def mapped(self, lookup: np.ndarray) -> Reviews:
        """The same reviews with every token t replaced by lookup[t], in 16 bits when the ids fit.

        A vocabulary of up to 65,536 ids (every config's num_words so far) halves the memory the
        reviews take during training; batches are int32 all the same (`padded`).
        """
        compact = np.uint16 if len(lookup) == 0 or lookup.max() <= np.iinfo(np.uint16).max else np.int32
        return Reviews(lookup.astype(compact)[self.tokens], self.offsets, self.labels)

    def padded(self, maxlen: int, padding: str = "pre", truncating: str = "pre") -> np.ndarray:
        """An (n, maxlen) int32 matrix, as `keras.utils.pad_sequences` would make it."""
        n, lengths = len(self), self.lengths
        kept = np.minimum(lengths, maxlen)
        src = self.offsets[:-1] + (lengths - kept if truncating == "pre" else 0)
        dst = maxlen - kept if padding == "pre" else np.zeros(n, dtype=np.int64)
        rows = np.repeat(np.arange(n), kept)
        within = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
        out = np.full((n, maxlen), PAD, dtype=np.int32)
        out[rows, dst[rows] + within] = self.tokens[src[rows] + within]
        return out


@dataclass(frozen=True)
class Vocabulary:
    """The words a model knows: words[i] has index i + FIRST_WORD."""

    words: tuple[str, ...]

    @property
    def size(self) -> int:
        """Indices in use, reserved ones included: the Embedding needs at least this many rows."""
        return len(self.words) + FIRST_WORD

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Word to id, built once per vocabulary (predict encodes many reviews with it)."""
        return {word: i + FIRST_WORD for i, word in enumerate(self.words)}

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """The token ids of `text` (START first) and how many of its words are known."""
        index = self.index
        ids = [index.get(word, OOV) for word in tokenize(text)]
        known = sum(i != OOV for i in ids)
        return np.asarray([START, *ids], dtype=np.int32), known

    def save(self, path: Path) -> None:
        payload = {"tokenizer_version": TOKENIZER_VERSION, "pad": PAD, "start": START, "oov": OOV,
                   "first_word": FIRST_WORD, "words": list(self.words)}
        write_atomic(path, json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            payload = load_json(Path(path).read_text(encoding="utf-8"), str(path))
        except (OSError, ValueError, UserError) as err:
            raise DataError(f"{path}: cannot read the vocabulary ({err})") from None
        words = payload.get("words") if isinstance(payload, dict) else None
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise DataError(f"{path}: damaged or not written by rnn train (expected a JSON object with a "
                            f"list of words); restore it, or train the run again")
        return cls(tuple(words))


@dataclass(frozen=True)
class Corpus:
    """Every review of a source, encoded by the word ranks of its training split."""

    words: tuple[str, ...]  # all training words, most frequent first: words[i] is index i + 3
    train: Reviews
    test: Reviews
    source: str
    skipped: int = 0  # files skipped: not UTF-8, over MAX_REVIEW_BYTES, or not a regular file
    # aclImdb's file number of each training review (movie order, see MOVIE_BLOCK); None when
    # unknown (Keras' download, files not named <number>_<rating>.txt).
    train_numbers: np.ndarray | None = None
    classes: tuple[str, ...] = BINARY  # label i is classes[i]
    test_lines: np.ndarray | None = None  # a file's line of each test row, when held out of it
    train_groups: np.ndarray | None = None  # each training row's group (data.group_column)

    def encoded(self, vocabulary: Vocabulary) -> tuple[Reviews, Reviews]:
        """Train and test re-encoded with `vocabulary`; words it lacks become OOV."""
        index = vocabulary.index
        lookup = np.array([PAD, START, OOV] + [index.get(w, OOV) for w in self.words], dtype=np.int32)
        return self.train.mapped(lookup), self.test.mapped(lookup)


def build_corpus(texts: dict[str, list[tuple[str, int]]], source: str, skipped: int = 0,
                 train_numbers: np.ndarray | None = None, classes: tuple[str, ...] = BINARY,
                 test_lines: np.ndarray | None = None) -> Corpus:
    """Tokenise every review and rank words by training-split frequency (ties alphabetical)."""
    words, reviews = encode_rows((split, text, label) for split in SPLITS for text, label in texts[split])
    return Corpus(words, reviews["train"], reviews["test"], source=source, skipped=skipped,
                  train_numbers=train_numbers, classes=classes, test_lines=test_lines)


def encode_rows(rows) -> tuple[tuple[str, ...], dict[str, Reviews]]:
    """(split, text, label) rows, in one pass, to the training words ranked by frequency (ties
    alphabetical) and each split's reviews encoded by those ranks.

    Each word gets a provisional id when first seen and the training rows count them; the ids are
    mapped to ranks at the end. Memory grows with the tokens (4 bytes each), not with the texts.
    """
    provisional: dict[str, int] = {}
    counts = array.array("q")
    tokens = {split: array.array("i") for split in SPLITS}
    lengths = {split: array.array("q") for split in SPLITS}
    labels = {split: array.array("q") for split in SPLITS}
    for split, text, label in rows:
        ids = [provisional.setdefault(word, len(provisional)) for word in tokenize(text)]
        if len(counts) < len(provisional):
            counts.extend([0] * (len(provisional) - len(counts)))
        if split == "train":
            for i in ids:
                counts[i] += 1
        tokens[split].append(-1)  # the start token
        tokens[split].extend(ids)
        lengths[split].append(len(ids) + 1)
        labels[split].append(label)
    names = list(provisional)
    ranked = sorted((i for i in range(len(names)) if counts[i] > 0), key=lambda i: (-counts[i], names[i]))
    lookup = np.full(len(names) + 1, OOV, dtype=np.int32)  # the last entry: the start token's -1
    lookup[np.array(ranked, dtype=np.int64)] = np.arange(FIRST_WORD, FIRST_WORD + len(ranked), dtype=np.int32)
    lookup[-1] = START
    reviews = {}
    for split in SPLITS:
        offsets = np.concatenate([[0], np.cumsum(np.frombuffer(lengths[split], dtype=np.int64))]).astype(np.int64)
        encoded = lookup[np.frombuffer(tokens[split], dtype=np.int32)]
        split_labels = np.frombuffer(labels[split], dtype=np.int64)
        dtype = np.int8 if split_labels.size == 0 or split_labels.max() < 128 else np.int32
        reviews[split] = Reviews(encoded, offsets, split_labels.astype(dtype))
    return tuple(names[i] for i in ranked), reviews


def review_lines(raw: bytes, name: str) -> list[str]:
    """The reviews of a --file, one per line (any newline convention), or one line naming the first
    line that is not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DataError(f"{name}: line {line} is not UTF-8 text; rnn predict reads UTF-8 text, one "
                        f"review per line") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = lines[:-1] if lines[-1] == "" else lines
    if not lines:
        raise DataError(f"{name}: no reviews (the file is empty); give one review per line")
    return lines
