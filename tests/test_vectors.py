"""model.embedding_file: word vectors a user brings, in GloVe's or word2vec's text format, .gz too."""

import gzip

import numpy as np
import pytest

from rnn_cli import files, loading, runs
from rnn_cli.corpus import Vocabulary
from rnn_cli.errors import ConfigError
from rnn_cli.vectors import check_vectors, read_vectors
from tests.conftest import FILLER, NEGATIVE, POSITIVE, cli_train, invoke


def vector_file(path, words, dim=8, header=False, seed=0):
    """A vector file of `words` (random vectors), returned with the vectors written."""
    rng = np.random.default_rng(seed)
    vectors = {word: rng.normal(size=dim).round(4) for word in words}
    lines = ([f"{len(words)} {dim}"] if header else []) + [
        f"{word} " + " ".join(f"{x:g}" for x in vector) for word, vector in vectors.items()]
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path, vectors


@pytest.mark.parametrize("name, header", [("glove.txt", False), ("word2vec.vec", True), ("vectors.txt.gz", False)])
def test_every_text_format_reads_the_words_it_covers(tmp_path, name, header):
    path, vectors = vector_file(tmp_path / name, ["Great", "great", "Dull", "plot", "unseen"], header=header)
    index = {"great": 4, "dull": 5, "plot": 6, "film": 7}
    assert check_vectors(path, 8) == path
    rows, found = read_vectors(path, index, 8)
    got = dict(zip(rows.tolist(), found))
    assert sorted(got) == [4, 5, 6]  # "film" is not in the file, "unseen" not in the vocabulary
    np.testing.assert_allclose(got[4], vectors["great"], atol=1e-6)  # the lower-case entry wins over "Great"
    np.testing.assert_allclose(got[5], vectors["Dull"], atol=1e-6)  # another case, when it is the only one


def test_bad_files_are_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"model.embedding_file: .*missing.txt: no such file"):
        check_vectors(tmp_path / "missing.txt", 8)
    path, _ = vector_file(tmp_path / "wide.txt", ["great"], dim=5)
    with pytest.raises(ConfigError, match=r"holds 5-dimensional vectors but model.embedding_dim is 8; set "
                                          r"model.embedding_dim: 5"):
        check_vectors(path, 8)
    (tmp_path / "ragged.txt").write_text("great 1 2 3\ndull 1 2\n")
    with pytest.raises(ConfigError, match=r"ragged.txt, line 2: 2 numbers, expected 3"):
        read_vectors(tmp_path / "ragged.txt", {"great": 4, "dull": 5}, 3)
    (tmp_path / "words.txt").write_text("great 1 2 x\n")
    with pytest.raises(ConfigError, match=r"line 1: not all numbers"):
        read_vectors(tmp_path / "words.txt", {"great": 4}, 3)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ConfigError, match=r"holds no word vectors"):
        check_vectors(tmp_path / "empty.txt", 3)


def test_a_run_starts_from_the_vectors_and_records_how_many_words_they_cover(tmp_path, tiny_config, imdb_archive):
    """Frozen (embedding_trainable false), the covered rows are the file's after training; trained, Keras moves
    them as any weight (test_model checks the flag reaches the layer)."""
    trainable = False
    words = [*POSITIVE, *NEGATIVE, *FILLER[:4]]
    path, vectors = vector_file(tmp_path / "glove.txt", words)
    run_dir = tmp_path / "run"
    result = cli_train(run_dir, tiny_config, imdb_archive, "--epochs", "1", "--set", f"model.embedding_file={path}",
                       "--set", f"model.embedding_trainable={str(trainable).lower()}")
    assert result.exit_code == 0, result.output
    vocabulary = Vocabulary.load(run_dir / runs.VOCABULARY)
    covered = [word for word in words if word in vocabulary.index and vocabulary.index[word] < 40]
    recorded = files.read_json(run_dir / runs.RUN_RECORD)["embedding_file"]
    assert recorded == {"path": str(path), "covered": len(covered), "words": min(len(vocabulary.words) + 3, 40) - 3,
                        "trainable": trainable}
    assert f"embedding: {len(covered)} of the vocabulary's" in result.output
    embeddings = np.asarray(loading.load_trained(run_dir).get_layer("embedding").embeddings)
    for word in covered:
        np.testing.assert_allclose(embeddings[vocabulary.index[word]], vectors[word], atol=1e-6)
    assert len(covered) >= 10 and np.ptp(embeddings[vocabulary.index[covered[0]]]) > 0


def test_a_vector_file_that_does_not_fit_is_refused_before_anything_is_made(tmp_path, tiny_config, imdb_archive):
    path, _ = vector_file(tmp_path / "wide.txt", ["great"], dim=5)
    result = cli_train(tmp_path / "run", tiny_config, imdb_archive, "--set", f"model.embedding_file={path}")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: model.embedding_file: ")
    assert not (tmp_path / "run").exists()
    result = invoke("train", "--config", tiny_config, "--set", "model.embedding_trainable=maybe")
    assert result.exit_code == 2 and "model.embedding_trainable" in result.output
