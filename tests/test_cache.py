"""rnn_cli.cache: a second load reads the cache; a changed source, a damaged or ill-fitting entry is
rebuilt; a cache that cannot be written is a warning."""

import os

import numpy as np
import pytest

from rnn_cli import aclimdb
from rnn_cli.config import DataConfig
from rnn_cli.data import load_data
from rnn_cli.files import cache_dir
from tests.conftest import write_archive


def acl(path, **fields):
    return DataConfig(source="aclimdb", path=str(path), **fields)


def test_second_load_uses_the_cache(imdb_archive, monkeypatch):
    first = load_data(acl(imdb_archive))
    assert list(cache_dir().glob("aclimdb-*.npz"))

    def no_reading(path):
        raise AssertionError("the archive was read again")

    monkeypatch.setattr(aclimdb, "read_reviews", no_reading)
    second = load_data(acl(imdb_archive))
    assert second.vocabulary == first.vocabulary
    np.testing.assert_array_equal(second.train.padded(30), first.train.padded(30))


def test_a_changed_source_replaces_its_cache_entry(imdb_folder, tmp_path):
    archive = write_archive(imdb_folder, tmp_path / "aclImdb_v1.tar.gz")
    other = write_archive(imdb_folder, tmp_path / "other.tar.gz")
    load_data(acl(archive))
    load_data(acl(other))
    first = {p.name for p in cache_dir().glob("*.npz")}
    assert len(first) == 2  # one entry per source

    os.utime(archive, ns=(0, 10**18))  # the same path, a new copy (another modification time)
    load_data(acl(archive))
    entries = {p.name for p in cache_dir().glob("*.npz")}
    assert len(entries) == 2 and len(entries & first) == 1  # the old entry went, the other source's stayed


@pytest.mark.parametrize("damage", ["empty", "truncated", "ill-fitting"])
def test_an_unreadable_or_ill_fitting_cache_entry_is_rebuilt(imdb_archive, damage):
    first = load_data(acl(imdb_archive))
    (entry,) = cache_dir().glob("aclimdb-*.npz")
    if damage == "empty":
        entry.write_bytes(b"")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:500])
    else:  # a valid file whose reviews name words the vocabulary lacks
        with np.load(entry) as z:
            arrays = dict(z)
        arrays["train_tokens"] = arrays["train_tokens"] + 10_000
        with open(entry, "wb") as out:
            np.savez(out, **arrays)
    again = load_data(acl(imdb_archive))
    np.testing.assert_array_equal(again.train.padded(30), first.train.padded(30))
    with np.load(entry) as z:  # rebuilt, not only worked around
        assert z["train_tokens"].max() < len(z["words"]) + 3


def test_a_cache_that_cannot_be_written_is_a_warning(imdb_archive, tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RNN_CLI_CACHE", str(tmp_path / "file" / "cache"))  # under a file: never a folder
    splits = load_data(acl(imdb_archive))
    assert len(splits.train) == 160
    assert "warning: the data cache was not saved" in capsys.readouterr().err
