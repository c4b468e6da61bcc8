"""The disk cache of encoded corpora: one .npz per source path, rebuilt when the source, the options
that read it, the tokeniser or this format change; any entry that cannot be read, or whose contents
do not fit, is rebuilt."""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

import numpy as np

from rnn_cli.corpus import SPLITS, Corpus, Reviews
from rnn_cli.encoding import FIRST_WORD, TOKENIZER_VERSION
from rnn_cli.errors import UserError
from rnn_cli.files import atomic_path, cache_dir

CACHE_FORMAT = 3  # 2: the training reviews' file numbers (validation_by: movie); 3: classes, source


def cached(path: Path, kind: str, version: list[str], build) -> Corpus:
    """The corpus of `path` from the cache, or built (and cached: failing that, a warning); `version`:
    what the entry depends on besides the tokeniser and this format (the source's sizes and times,
    the options that read it)."""
    cache_file = cache_dir() / cache_name(path, kind, version)
    if cache_file.exists():
        try:
            return _read_cache(cache_file)
        except Exception:  # noqa: BLE001 - any unreadable or ill-fitting entry is rebuilt, never fatal
            with contextlib.suppress(OSError):
                cache_file.unlink()
    corpus = build()
    try:
        _write_cache(cache_file, corpus)
        for stale in cache_file.parent.glob(f"{cache_file.name.rsplit('-', 1)[0]}-*.npz"):
            if stale != cache_file:
                stale.unlink(missing_ok=True)  # the same source before it changed (or an older tokeniser)
    except (UserError, OSError) as err:  # the data is loaded all the same; only the next load is slower
        print(f"warning: the data cache was not saved ({' '.join(str(err).split())})", file=sys.stderr)
    return corpus


def cache_name(path: Path, kind: str, version: list[str]) -> str:
    """<kind>-<source>-<version>.npz: one entry per source path; a new version replaces the old one."""
    version = "\n".join([f"tokenizer={TOKENIZER_VERSION}", f"format={CACHE_FORMAT}", *version])
    return f"{kind}-{_digest(str(path.resolve()))}-{_digest(version)}.npz"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _write_cache(file: Path, corpus: Corpus) -> None:
    arrays = {"words": np.array(corpus.words, dtype=str), "skipped": np.array(corpus.skipped),
              "classes": np.array(corpus.classes, dtype=str), "source": np.array(corpus.source)}
    for name in ("train_numbers", "test_lines", "train_groups"):
        if getattr(corpus, name) is not None:
            arrays[name] = getattr(corpus, name)
    for split in SPLITS:
        reviews = getattr(corpus, split)
        arrays |= {f"{split}_tokens": reviews.tokens, f"{split}_offsets": reviews.offsets,
                   f"{split}_labels": reviews.labels}
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(file) as tmp, open(tmp, "wb") as out:
        np.savez(out, **arrays)


def _read_cache(file: Path) -> Corpus:
    """The cached corpus; any error (a damaged file, contents that do not fit) means rebuild it."""
    with np.load(file, allow_pickle=False) as z:
        reviews = {split: Reviews(z[f"{split}_tokens"], z[f"{split}_offsets"], z[f"{split}_labels"])
                   for split in SPLITS}
        corpus = Corpus(tuple(z["words"].tolist()), reviews["train"], reviews["test"],
                        source=str(z["source"]), skipped=int(z["skipped"]),
                        train_numbers=z["train_numbers"] if "train_numbers" in z.files else None,
                        classes=tuple(z["classes"].tolist()),
                        test_lines=z["test_lines"] if "test_lines" in z.files else None,
                        train_groups=z["train_groups"] if "train_groups" in z.files else None)
    ids = len(corpus.words) + FIRST_WORD
    for reviews in (corpus.train, corpus.test):
        offsets = reviews.offsets
        fits = (offsets.ndim == 1 and len(offsets) == len(reviews.labels) + 1 and len(reviews.labels) > 0
                and offsets[0] == 0 and offsets[-1] == len(reviews.tokens) and np.all(np.diff(offsets) >= 0)
                and np.isin(reviews.labels, range(len(corpus.classes))).all() and reviews.tokens.min(initial=0) >= 0
                and reviews.tokens.max(initial=0) < ids)
        if not fits:
            raise ValueError(f"{file}: the cached reviews do not fit their own vocabulary and offsets")
    for extra in (corpus.train_numbers, corpus.train_groups):
        if extra is not None and len(extra) != len(corpus.train):
            raise ValueError(f"{file}: the cached review numbers or groups do not fit the reviews")
    return corpus

