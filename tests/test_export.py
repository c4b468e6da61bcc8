"""rnn export: the SavedModel reads raw text exactly as rnn predict does, loaded back in a process
that cannot import rnn_cli; ONNX and LiteRT match the Keras model on token ids, and the client
README's code runs as written."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnn_cli import loading, runs
from rnn_cli.export import probabilities
from rnn_cli.predict import predict_texts
from tests.conftest import cli_train, invoke, topic_rows, write_table

# Text a user might send: markup, apostrophes, non-ASCII letters and digits, an empty text, an
# unknown word only, and texts longer than the tiny config's maxlen of 40 tokens.
TEXTS = [
    "The movie was great and the actors wonderful.<br /><br />Loved it!",
    "BORING, dull... a waste. I hated it<BR/>and the plot",
    "It wasn't 'awful', it's just dull -- the film's plot",
    "Ünïcödé: the fïlm wäs GREAT, naïve, 東京 and 2024's best; Σοφία ΟΔΟΣ",
    "",
    "zzzz qqqq",
    "\tthe\x00movie\u2028was\u00a0superb_and brilliant",
    " ".join(["the movie was awful and boring"] * 12),
    " ".join(["great"] + ["the plot and the story"] * 15 + ["terrible"]),
]


def run_isolated(script: str, cwd: Path) -> str:
    """Python in a fresh process where `import rnn_cli` fails: what an export's user has."""
    guard = "import sys\nsys.modules['rnn_cli'] = None\n"
    done = subprocess.run([sys.executable, "-c", guard + script], cwd=cwd, capture_output=True, text=True,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def saved_model(trained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "tiny"
    result = invoke("export", "--run", trained_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"written: {out / '1'}" in result.output
    return out


def saved_model_outputs(folder: Path, texts: list[str]) -> list[dict]:
    script = f"""
import json, tensorflow as tf
serve = tf.saved_model.load({str(folder)!r}).signatures["serving_default"]
out = serve(texts=tf.constant(json.loads({json.dumps(json.dumps(texts))})))
print(json.dumps({{key: value.numpy().tolist() for key, value in out.items()}}, default=bytes.decode))
"""
    columns = json.loads(run_isolated(script, folder))
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def test_the_saved_model_reads_raw_text_as_rnn_predict_does(trained_run, saved_model):
    exported = saved_model_outputs(saved_model / "1", TEXTS)
    predicted = predict_texts(trained_run, TEXTS)
    assert len(exported) == len(predicted) == len(TEXTS)
    for got, want in zip(exported, predicted):
        assert (got["words"], got["known_words"], got["truncated"]) == (want["words"], want["known_words"],
                                                                        want["truncated"]), want["text"]
        if want["probability"] is None:  # nothing to score: rnn predict says so; a tensor cannot
            assert got["known_words"] == 0
            continue
        assert abs(got["probability"] - want["probability"]) < 1e-5, want["text"]
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx([1 - want["probability"], want["probability"]], abs=1e-5)
    assert any(p["truncated"] for p in predicted) and any(p["probability"] is None for p in predicted)


def test_an_export_is_a_new_version_with_the_model_card(trained_run, saved_model):
    assert invoke("export", "--run", trained_run, "--out", saved_model).exit_code == 0
    # TensorFlow Serving loads the highest; the mark says the folder is rnn export's own
    assert sorted(p.name for p in saved_model.iterdir()) == [".rnn-export.json", "1", "2"]
    card = (saved_model / "2" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Test metrics" in card and "| accuracy |" in card
    assert json.loads((saved_model / "2" / runs.CLASSES).read_text())["classes"] == ["negative", "positive"]


@pytest.mark.parametrize("fmt, name", [("onnx", "model.onnx"), ("litert", "model.tflite")])
def test_token_id_models_and_their_readme_code(trained_run, tmp_path, fmt, name):
    out = tmp_path / fmt
    result = invoke("export", "--run", trained_run, "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "vocab.json", "classes.json", "README.md",
                                                            "MODEL_CARD.md", ".rnn-export.json"])
    readme = (out / "README.md").read_text(encoding="utf-8")
    code = readme.split("```python\n")[1].split("```")[0]
    texts = json.loads(re.search(r"texts = (\[.*\])", code)[1])
    got = json.loads(run_isolated(code, out))
    want = probabilities(loading.Trained.load(trained_run), texts)[:, 1]  # the Keras model's, known words or not
    assert [row[0] for row in got] == pytest.approx(want.tolist(), abs=1e-5)


def test_a_softmax_model_without_a_mask_exports_too(tiny_config, tmp_path):
    rows = topic_rows(["sport", "music", "food"], 40)
    data = write_table(tmp_path / "topics.csv", rows)
    run_dir = tmp_path / "run"
    trained = cli_train(run_dir, tiny_config, data, "--epochs", "2", "--set", "data.bucketing=false",
                        "--set", "data.maxlen=12", "--set", "data.truncating=post")
    assert trained.exit_code == 0, trained.output
    assert invoke("export", "--run", run_dir, "--out", tmp_path / "sm").exit_code == 0
    texts = [text for text, _ in rows[:20]] + ["goal " * 30 + "song", ""]
    exported = saved_model_outputs(tmp_path / "sm" / "1", texts)
    for got, want in zip(exported, predict_texts(run_dir, texts)):
        if want["probability"] is None:
            continue
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx([want["probabilities"][c] for c in runs.read_classes(run_dir)],
                                                     abs=1e-5)


def test_a_seed_group_exports_as_one_model_that_averages_its_runs(tiny_group, tmp_path):
    texts = ["a wonderful moving film", "dull and boring, a waste", "the plot was thin but the actors were great"]
    seeds = [predict_texts(run, texts) for run in sorted(tiny_group.glob("seed-*"))]
    means = [np.mean([rows[i]["probability"] for rows in seeds]) for i in range(len(texts))]
    assert invoke("export", "--run", tiny_group, "--out", tmp_path / "sm").exit_code == 0
    exported = saved_model_outputs(tmp_path / "sm" / "1", texts)
    assert [row["probabilities"][1] for row in exported] == pytest.approx(means, abs=1e-5)
    assert "An ensemble of 2 recurrent text classifiers" in (tmp_path / "sm" / "1" / "MODEL_CARD.md").read_text()
    for fmt in ("onnx", "litert"):  # each checked against the group's probabilities before it is kept
        result = invoke("export", "--run", tiny_group, "--format", fmt, "--out", tmp_path / fmt)
        assert result.exit_code == 0, result.output
        assert (tmp_path / fmt / "vocab.json").exists()


def test_export_errors_are_one_line(trained_run, tmp_path):
    taken = tmp_path / "file"
    taken.write_text("x")
    result = invoke("export", "--run", trained_run, "--out", taken)
    assert result.exit_code == 2 and "is a file" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("export", "--run", empty)
    assert result.exit_code == 2 and "no model.keras" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file"]  # nothing half-made left


def test_an_export_never_replaces_what_it_did_not_write(trained_run, tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export"))
    before = sorted(p.name for p in run.iterdir())
    for out in (mine, run, run / "model", tmp_path, run / "export" / ".." / "x"):
        result = invoke("export", "--run", run, "--format", "onnx", "--out", out)
        assert result.exit_code == 2 and f"--out {out}:" in result.output, (out, result.output)
        assert len(result.output.strip().splitlines()) == 1
        if out != mine:  # a run, or a folder holding one: not even with --force
            assert invoke("export", "--run", run, "--format", "onnx", "--out", out, "--force").exit_code == 2
    assert sorted(p.name for p in run.iterdir()) == before and (mine / "notes.txt").exists()
    forced = invoke("export", "--run", run, "--format", "onnx", "--out", mine, "--force")
    assert forced.exit_code == 0 and f"replacing {mine} (--force): its 2 file(s)" in forced.output, forced.output
    assert not (mine / "notes.txt").exists() and (mine / "model.onnx").exists()
    # An earlier export of its own is replaced without --force, and leaves nothing beside it
    for _ in range(2):
        again = invoke("export", "--run", run, "--format", "onnx", "--out", mine)
        assert again.exit_code == 0 and "replacing" not in again.output, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "run"]


def test_an_out_path_under_a_file_is_one_line_in_every_command_that_writes_one(trained_run, tmp_path):
    (tmp_path / "file").write_text("x")
    under = tmp_path / "file" / "sub"
    for command in (["export", "--run", trained_run, "--out", under], ["plot", "--run", trained_run, "--out", under / "c.png"],
                    ["explain", "a fine film", "--run", trained_run, "--out", under / "e.png"]):
        result = invoke(*command)
        assert result.exit_code == 2 and "is a file, not a folder" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    for name in ("model.keras", "history.json", "notes.txt"):  # a figure never takes another file's name
        result = invoke("plot", "--run", trained_run, "--out", tmp_path / name)
        assert result.exit_code == 2 and "give a path ending .png" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_sigterm_during_an_export_leaves_no_staging_folder(trained_run, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "rnn_cli.cli", "export", "--run", str(trained_run),
                                "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".out.") for p in tmp_path.iterdir()):  # the staging folder is made
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143, process.stdout.read()
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []  # cache: the test's own
