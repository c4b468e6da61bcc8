import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time

import keras
import numpy as np
import pytest

from rnn_cli import aclimdb, data
from rnn_cli.config import DataConfig
from rnn_cli.corpus import Vocabulary
from rnn_cli.data import load_data
from rnn_cli.encoding import OOV, START, tokenize
from rnn_cli.errors import DataError
from tests.conftest import topic_rows, write_aclimdb, write_archive, write_class_folders, write_table


def acl(path, **fields):
    return DataConfig(source="aclimdb", path=str(path), **fields)


def test_index_conventions_and_vocabulary_cap(imdb_folder):
    splits = load_data(acl(imdb_folder, num_words=10))
    words = splits.vocabulary.words
    assert len(words) == 10 - 3 and splits.vocabulary.size == 10
    everything = np.concatenate([splits.train.tokens, splits.val.tokens, splits.test.tokens])
    assert everything.max() < 10 and everything.min() >= START
    starts = splits.train.tokens[splits.train.offsets[:-1]]
    assert np.all(starts == START)  # every review begins with the start token
    assert np.any(everything == OOV)  # words beyond the cap became out-of-vocabulary
    # The most frequent training word gets 3, the next 4, ...
    counts = {}
    for split, _, _, raw in aclimdb.iter_review_files(imdb_folder):
        for w in tokenize(raw.decode("utf-8")) if split == "train" else []:
            counts[w] = counts.get(w, 0) + 1
    expected = sorted(counts, key=lambda w: (-counts[w], w))[:7]
    assert list(words) == expected


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    folder = write_aclimdb(tmp_path, {"train": 6, "test": 6})
    (folder / "test" / "pos" / "99_10.txt").write_text("zebra zebra zebra zebra zebra zebra zebra zebra")
    splits = load_data(acl(folder, num_words=1000))
    assert "zebra" not in splits.vocabulary.words


def test_folder_and_archive_give_the_same_data(imdb_folder, imdb_archive):
    a, b = load_data(acl(imdb_folder)), load_data(acl(imdb_archive))
    assert a.vocabulary == b.vocabulary
    np.testing.assert_array_equal(a.train.padded(30), b.train.padded(30))
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    assert a.sizes() == {"train": 160, "val": 40, "test": 50, "vocabulary": a.vocabulary.size, "skipped": 0}


def test_validation_split_is_seeded_and_mixes_classes(imdb_archive):
    a = load_data(acl(imdb_archive, seed=1))
    b = load_data(acl(imdb_archive, seed=1))
    c = load_data(acl(imdb_archive, seed=2))
    np.testing.assert_array_equal(a.val.padded(30), b.val.padded(30))
    assert not np.array_equal(a.val.padded(30), c.val.padded(30))
    assert 0 < a.val.labels.mean() < 1  # not all one class, though the archive is sorted by label


def test_split_by_movie_holds_out_whole_blocks_of_neighbouring_reviews():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 1000)
    numbers = np.concatenate([rng.permutation(1000), rng.permutation(1000)])  # files in name order
    kept, held_out = data.split_by_movie(labels, numbers, 0.3, np.random.default_rng(5))
    assert sorted([*kept, *held_out]) == list(range(2000))
    for label in (0, 1):
        held = np.sort(numbers[held_out][labels[held_out] == label])
        assert len(held) == 300
        blocks, counts = np.unique(held // data.MOVIE_BLOCK, return_counts=True)
        assert sorted(counts)[:-2] == [300 - 2 * data.MOVIE_BLOCK]  # two whole blocks and a part
        part = held[np.isin(held // data.MOVIE_BLOCK, blocks[counts < data.MOVIE_BLOCK])]
        assert np.array_equal(part, np.arange(part[0], part[0] + len(part)))  # cut at one place
    again = data.split_by_movie(labels, numbers, 0.3, np.random.default_rng(5))
    other = data.split_by_movie(labels, numbers, 0.3, np.random.default_rng(6))
    assert np.array_equal(held_out, again[1]) and set(held_out) != set(other[1])


def test_validation_by_movie_keeps_a_movie_on_one_side(tmp_path):
    folder = write_aclimdb(tmp_path, {"train": 300, "test": 4})
    for label in ("pos", "neg"):  # each review names its "movie": its block of review numbers
        for file in (folder / "train" / label).glob("*.txt"):
            number = int(file.name.split("_")[0])
            file.write_text(f"{file.read_text()} {label}title{number // data.MOVIE_BLOCK}")
    config = acl(folder, num_words=1000, validation_split=0.2, validation_by="movie")
    splits = load_data(config)
    assert splits.sizes()["val"] == 120 and splits.val.labels.sum() == 60

    def movies(reviews):
        words = {i: w for i, w in enumerate(splits.vocabulary.words, start=data.FIRST_WORD)}
        return {words[t] for t in reviews.tokens.tolist() if "title" in words.get(t, "")}

    assert len(movies(splits.val) & movies(splits.train)) <= 2  # one cut block per label at most
    cached = load_data(config)  # from the cache, numbers included
    np.testing.assert_array_equal(cached.val.padded(40), splits.val.padded(40))
    np.testing.assert_array_equal(cached.train.padded(40), splits.train.padded(40))


def test_validation_by_movie_needs_numbered_files(tmp_path):
    folder = write_aclimdb(tmp_path, {"train": 6, "test": 2})
    next((folder / "train" / "pos").glob("0_*.txt")).rename(folder / "train" / "pos" / "first.txt")
    with pytest.raises(DataError, match="validation_by: movie needs .* <number>_<rating>.txt"):
        load_data(acl(folder, validation_by="movie"))
    load_data(acl(folder))  # review: any names


def test_limit_keeps_n_reviews_class_balanced(imdb_archive):
    splits = load_data(acl(imdb_archive, limit=20))
    assert len(splits.train) + len(splits.val) == 20
    assert len(splits.test) == 20 and splits.test.labels.sum() == 10
    assert np.concatenate([splits.train.labels, splits.val.labels]).sum() == 10


def test_a_run_vocabulary_re_encodes_the_corpus(imdb_archive):
    vocabulary = Vocabulary(("movie", "the", "great"))
    splits = load_data(acl(imdb_archive), vocabulary)
    used = set(np.unique(np.concatenate([splits.train.tokens, splits.test.tokens])).tolist())
    assert used <= {START, OOV, 3, 4, 5}
    ids, known = vocabulary.encode("The GREAT unknown movie")
    assert ids.tolist() == [START, 4, 5, OOV, 3] and known == 3


def add_member(tar, name, payload=b"evil"):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def test_crafted_archive_never_writes_outside(tmp_path, imdb_folder):
    archive = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(imdb_folder, arcname="aclImdb")
        add_member(tar, "../../escaped.txt")
        add_member(tar, "/tmp/absolute-escape.txt")
        add_member(tar, "aclImdb/train/pos/../../../../escaped-too.txt")
        link = tarfile.TarInfo("aclImdb/train/pos/link.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    before = set(tmp_path.parent.rglob("*"))
    splits = load_data(acl(archive))
    assert len(splits.train) + len(splits.val) == 200  # the crafted members were not taken as reviews
    created = set(tmp_path.parent.rglob("*")) - before
    assert all("escape" not in p.name for p in created)
    assert not (tmp_path.parent.parent / "escaped.txt").exists()


def test_truncated_archive_is_a_clear_error(tmp_path, imdb_archive):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(imdb_archive.read_bytes()[: imdb_archive.stat().st_size // 2])
    with pytest.raises(DataError, match="broken.tar.gz: not a readable aclImdb archive"):
        load_data(acl(broken))


def test_not_an_archive_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not a tar file at all")
    with pytest.raises(DataError, match="junk.tar.gz: not a readable aclImdb archive"):
        load_data(acl(junk))


def test_folder_without_the_layout_is_a_clear_error(tmp_path):
    (tmp_path / "train" / "pos").mkdir(parents=True)
    with pytest.raises(DataError, match="missing folder train/neg"):
        load_data(acl(tmp_path))


def test_archive_without_a_split_is_a_clear_error(tmp_path):
    folder = write_aclimdb(tmp_path / "src", {"train": 4})
    archive = write_archive(folder, tmp_path / "train-only.tar.gz")
    with pytest.raises(DataError, match="no reviews in test/neg"):
        load_data(acl(archive))


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="nowhere.tar.gz: no such file or folder"):
        load_data(acl(tmp_path / "nowhere.tar.gz"))


def test_non_utf8_reviews_are_counted_and_skipped(tmp_path):
    folder = write_aclimdb(tmp_path, {"train": 6, "test": 6})
    (folder / "train" / "neg" / "100_1.txt").write_bytes(b"bad \xff\xfe bytes")
    splits = load_data(acl(folder))
    assert splits.skipped == 1
    assert len(splits.train) + len(splits.val) == 12


def fake_keras_imdb(monkeypatch, calls):
    word_index = {"the": 1, "great": 2, "awful": 3, "movie": 4}

    def load_data(num_words=None, index_from=3, **kwargs):
        calls.append({"num_words": num_words, "index_from": index_from})
        # As Keras does: start 1, OOV 2, word of rank r at r + index_from, capped at num_words.
        def encode(words):
            ids = [1] + [word_index[w] + index_from for w in words]
            return [i if i < num_words else 2 for i in ids]
        x_train = [encode(["the", "great", "movie"]), encode(["the", "awful", "movie"])] * 5
        x_test = [encode(["great"]), encode(["awful"])] * 3
        return (x_train, np.array([1, 0] * 5)), (x_test, np.array([1, 0] * 3))

    monkeypatch.setattr(keras.datasets.imdb, "load_data", load_data)
    monkeypatch.setattr(keras.datasets.imdb, "get_word_index", lambda **kwargs: word_index)


def test_keras_source_uses_load_data_with_the_same_conventions(monkeypatch):
    calls = []
    fake_keras_imdb(monkeypatch, calls)
    splits = load_data(DataConfig(source="keras", num_words=6, maxlen=5))
    assert calls == [{"num_words": 6, "index_from": 2}]
    assert splits.vocabulary.words == ("the", "great", "awful")
    assert splits.source == "keras"
    assert splits.sizes()["train"] == 8 and splits.sizes()["val"] == 2 and splits.sizes()["test"] == 6
    rows = {tuple(r) for r in splits.test.padded(3)}
    assert rows == {(0, 1, 4), (0, 1, 5)}  # "great" is 4, "awful" 5, as the vocabulary says
    assert splits.vocabulary.encode("great movie")[0].tolist() == [1, 4, OOV]


def test_keras_source_without_network_says_how_to_use_a_local_copy(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://example.invalid/imdb.npz: None -- no network")

    monkeypatch.setattr(keras.datasets.imdb, "load_data", offline)
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="keras"))
    message = str(err.value)
    assert "could not load IMDB through Keras" in message and "--data" in message
    assert "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz" in message  # where to get it
    assert "\n" not in message


def test_only_regular_files_inside_the_dataset_are_read(tmp_path):
    folder = write_aclimdb(tmp_path / "data", {"train": 6, "test": 6})
    secret = tmp_path / "secret.txt"
    secret.write_text("zanzibar " * 5)
    (folder / "train" / "pos" / "900_9.txt").symlink_to(secret)
    os.mkfifo(folder / "train" / "neg" / "901_1.txt")  # opening a FIFO would wait forever
    splits = load_data(acl(folder))
    assert splits.skipped == 2 and "zanzibar" not in splits.vocabulary.words
    outside = tmp_path / "elsewhere"
    (folder / "test" / "pos").rename(outside)
    (folder / "test" / "pos").symlink_to(outside)
    with pytest.raises(DataError, match="test/pos links out of the dataset folder"):
        load_data(acl(folder))


def test_a_path_that_is_no_dataset_is_one_line(tmp_path):
    with pytest.raises(DataError, match="/dev/zero: not a folder nor a regular file"):
        load_data(acl("/dev/zero"))


def test_an_oversized_review_is_skipped_unread(tmp_path, monkeypatch):
    folder = write_aclimdb(tmp_path / "data", {"train": 6, "test": 6})
    (folder / "train" / "pos" / "900_9.txt").write_text("huge " * 400)
    archive = write_archive(folder, tmp_path / "big.tar.gz")
    monkeypatch.setattr(aclimdb, "MAX_REVIEW_BYTES", 1000)
    for source in (folder, archive):
        splits = load_data(acl(source))
        assert splits.skipped == 1 and "huge" not in splits.vocabulary.words


@pytest.mark.parametrize("fields", [{"validation_split": 0.001}, {"limit": 4, "validation_split": 0.1}])
def test_a_split_left_empty_is_refused_with_the_sizes(imdb_archive, fields):
    with pytest.raises(DataError, match=r"data.validation_split .* leaves \d+ to train on and 0 to validate"):
        load_data(acl(imdb_archive, **fields))


def own(path, source, **fields):
    return DataConfig(source=source, path=str(path), **fields)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_a_file_without_test_path_holds_out_test_split_of_each_class(tmp_path, suffix):
    path = write_table(tmp_path / f"d{suffix}", topic_rows(["sport", "music", "food"], 20))
    splits = load_data(own(path, suffix[1:], test_split=0.25, validation_split=0.2))
    assert splits.classes == ("food", "music", "sport")
    assert np.bincount(splits.test.labels).tolist() == [5, 5, 5]
    assert len(splits.train) + len(splits.val) == 45
    assert len(splits.test_lines) == 15 and len(set(splits.test_lines.tolist())) == 15  # recorded for the run
    again = load_data(own(path, suffix[1:], test_split=0.25, validation_split=0.2))  # from the cache
    assert again.classes == splits.classes and again.test_lines.tolist() == splits.test_lines.tolist()


def test_a_test_file_and_its_unknown_label(tmp_path):
    train = write_table(tmp_path / "train.csv", topic_rows(["pos", "neg"], 10))
    test = write_table(tmp_path / "test.csv", topic_rows(["pos", "neg"], 3, seed=1))
    splits = load_data(own(train, "csv", test_path=str(test)))
    assert splits.classes == ("neg", "pos") and len(splits.test) == 6 and splits.test_lines is None
    write_table(tmp_path / "test.csv", [("a goal", "sport")])
    with pytest.raises(DataError, match=r"test.csv, line 2: label 'sport' is not among the training data's classes"):
        load_data(own(train, "csv", test_path=str(test)))


def test_a_class_too_small_to_hold_out_is_one_line(tmp_path):
    path = write_table(tmp_path / "d.csv", [*topic_rows(["sport", "music"], 10), ("a song", "food")])
    with pytest.raises(DataError, match="class 'food' has 1 row\\(s\\), too few to hold some out"):
        load_data(own(path, "csv"))


def test_class_folders_and_integer_labels(tmp_path):
    root = write_class_folders(tmp_path / "d", topic_rows(["sport", "music", "food"], 12))
    splits = load_data(own(root, "folder"))
    assert splits.classes == ("food", "music", "sport") and len(splits.test) == 9
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": int(l == "pos")}) + "\n"
                            for t, l in topic_rows(["pos", "neg"], 10)))
    assert load_data(own(path, "jsonl")).classes == ("0", "1")


def test_the_source_comes_from_the_extension_or_the_layout(tmp_path, imdb_folder, imdb_archive):
    from rnn_cli.data import source_of

    assert [source_of(tmp_path / name) for name in ("a.csv", "b.TSV", "c.jsonl", "d.ndjson")] == [
        "csv", "tsv", "jsonl", "jsonl"]
    assert source_of(imdb_folder) == source_of(imdb_archive) == "aclimdb"
    assert source_of(write_class_folders(tmp_path / "own", topic_rows(["sport", "music"], 4))) == "folder"


def test_a_file_of_another_kind_is_one_line_naming_the_kinds(tmp_path):
    from rnn_cli.data import source_of

    (tmp_path / "notes.txt").write_text("just notes\n")
    with pytest.raises(DataError, match=r"notes.txt: cannot read a .txt file; --data takes a .csv, .tsv or .jsonl "
                                        r"file of texts and labels, an aclImdb folder or its .tar.gz archive, or a "
                                        r"folder of train/<class>/\*.txt"):
        source_of(tmp_path / "notes.txt")
    (tmp_path / "data.bin").write_bytes((tmp_path / "notes.txt").read_bytes())
    with pytest.raises(DataError, match="cannot read a .bin file"):
        source_of(tmp_path / "data.bin")


def test_data_classes_must_be_the_labels_of_the_data(tmp_path):
    path = write_table(tmp_path / "d.csv", topic_rows(["sport", "music", "food"], 10))
    assert load_data(own(path, "csv", classes=("sport", "music", "food"))).classes == ("sport", "music", "food")
    with pytest.raises(DataError, match=r"data.classes \['sport', 'music', 'food', 'art'\]: .*d.csv has no row "
                                        r"of 'art'"):
        load_data(own(path, "csv", classes=("sport", "music", "food", "art")))


def test_a_group_column_keeps_each_group_on_one_side_of_the_validation_split(tmp_path):
    rows = topic_rows(["sport", "music"], 30)
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": l, "shop": f"shop{i // 4}"}) + "\n"
                            for i, (t, l) in enumerate(rows)))
    config = own(path, "jsonl", group_column="shop", validation_split=0.25)
    splits = load_data(config)
    words = splits.vocabulary.words

    def shops(reviews):  # each review's shop, read back from its text (texts are unique here)
        texts = {" ".join(words[t - 3] for t in reviews.tokens[a + 1:b]): None
                 for a, b in zip(reviews.offsets[:-1], reviews.offsets[1:])}
        return {f"shop{i // 4}" for i, (t, _) in enumerate(rows) if t in texts}

    assert len(splits.val) > 0 and not shops(splits.train) & shops(splits.val)
    with pytest.raises(DataError, match="no key 'store'"):
        load_data(own(path, "jsonl", group_column="store"))


def test_an_empty_text_is_skipped_and_counted_where_run_json_reads_it(tmp_path):
    rows = topic_rows(["sport", "music"], 10)
    path = write_table(tmp_path / "d.csv", [*rows[:5], ("   ", "sport"), *rows[5:]])
    splits = load_data(own(path, "csv"))
    assert splits.sizes()["skipped"] == 1
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20


def test_a_download_server_that_never_answers_is_one_line_within_the_timeout(tmp_path):
    # Keras' download goes through the proxy the environment names: here a socket that accepts and never speaks.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    proxy = f"http://127.0.0.1:{silent.getsockname()[1]}"
    script = "import rnn_cli.data as d\nd.DOWNLOAD_TIMEOUT = 1\nd.load_keras_corpus(100)\n"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "https_proxy": proxy, "HTTPS_PROXY": proxy,
           "no_proxy": "", "NO_PROXY": ""}
    with silent:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert "DataError: could not load IMDB through Keras (no answer within 1 s" in done.stderr, done.stderr[-2000:]
    assert time.monotonic() - started < 60
