"""rnn_cli.predict through `rnn predict`."""

import json
import shlex
import subprocess
import sys

from click.testing import CliRunner

from rnn_cli.cli import main
from tests.conftest import invoke

def test_predict_scores_reviews(trained_run):
    result = invoke("predict", "--run", trained_run, "--json",
                    "A great, wonderful and moving film. Loved it!", "Boring, dull and awful. A waste.")
    assert result.exit_code == 0, result.output
    positive, negative = (json.loads(line) for line in result.output.strip().splitlines())
    assert positive["label"] == "positive" and negative["label"] == "negative"
    assert positive["probability"] > 0.5 > negative["probability"]


def test_predict_empty_and_unknown_text_get_a_clear_answer(trained_run, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\nxylophone quasar\nsuperb film\n", encoding="utf-8")
    result = invoke("predict", "--run", trained_run, "--file", reviews)
    assert result.exit_code == 0, result.output
    lines = result.output.strip("\n").splitlines()
    assert len(lines) == 3
    assert "empty review" in lines[0]
    assert "no word of this review is in the model's vocabulary" in lines[1]
    assert lines[2].split()[1] in ("positive", "negative")


def test_predict_says_when_a_review_is_truncated(trained_run):
    long_review = " ".join(["great film"] * 30)  # 60 words, maxlen 40
    result = invoke("predict", "--run", trained_run, "--json", long_review)
    assert json.loads(result.output)["note"] == "long review: only its last 40 words were read (maxlen 40)"


def test_predict_needs_text(trained_run):
    result = invoke("predict", "--run", trained_run)
    assert result.exit_code == 2 and "give review TEXT" in result.output


def test_a_file_that_is_not_utf8_text_is_one_line_naming_its_line(trained_run, tmp_path):
    reviews = tmp_path / "reviews.bin"
    reviews.write_bytes(b"a fine film\r\nsecond \xff\xfe line\n")
    result = invoke("predict", "--run", trained_run, "--file", reviews)
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: {reviews}: line 2 is not UTF-8 text; rnn predict reads UTF-8 "
                                     f"text, one review per line")
    result = CliRunner().invoke(main, ["predict", "--run", str(trained_run), "--file", "-"], input=b"\xff\n")
    assert result.exit_code == 2 and "<stdin>: line 1 is not UTF-8 text" in result.output


def test_damaged_run_files_are_one_line_naming_the_file(trained_run, tmp_path):
    damaged = tmp_path / "run"
    damaged.mkdir()
    for path in trained_run.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    (damaged / "vocab.json").write_text('{"words": 3}')
    result = invoke("predict", "--run", damaged, "good")
    assert result.exit_code == 2 and result.output.startswith(f"Error: {damaged}/vocab.json: damaged")
    (damaged / "model.keras").write_bytes(b"")
    result = invoke("eval", "--run", damaged)
    assert result.exit_code == 2 and result.output.startswith(f"Error: {damaged}/model.keras: damaged")


def test_an_empty_file_is_one_line(trained_run, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    result = invoke("predict", "--run", trained_run, "--file", tmp_path / "empty.txt")
    assert result.exit_code == 2 and "empty.txt: no reviews (the file is empty)" in result.output


def test_standard_input_closed_reads_as_empty(trained_run):
    command = f"{shlex.quote(sys.executable)} -m rnn_cli.cli predict --run {shlex.quote(str(trained_run))} --file - <&-"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "<stdin>: no reviews (the file is empty)" in done.stderr, done.stderr
    assert "internal error" not in done.stderr
