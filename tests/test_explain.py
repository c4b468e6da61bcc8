import json
import shutil

import keras
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from rnn_cli import files, runs
from rnn_cli.cli import main
from rnn_cli.config import LayerConfig, ModelConfig
from rnn_cli.corpus import Vocabulary
from rnn_cli.explain import START_WORD, explain_review
from rnn_cli.model import build_model
from rnn_cli.plots import FIGSIZE
from tests.test_plots import drawn_whole

REVIEW = "the acting was wonderful and the plot brilliant"


def model_probability(run_dir, ids) -> float:
    model = keras.saving.load_model(run_dir / runs.MODEL)
    return float(model.predict(np.asarray([ids]), verbose=0)[0, 0])


def test_running_score_is_the_models_score_of_every_prefix(trained_run):
    explanation = explain_review(trained_run, REVIEW)
    ids, _ = Vocabulary.load(trained_run / runs.VOCABULARY).encode(REVIEW)
    assert explanation.words == [START_WORD, *REVIEW.split()]
    for k in (1, 4, len(ids)):
        assert explanation.scores[k - 1] == pytest.approx(model_probability(trained_run, ids[:k]), abs=1e-5)
    assert explanation.probability == pytest.approx(explanation.scores[-1], abs=1e-9)
    assert np.sum(explanation.changes) == pytest.approx(explanation.probability - explanation.baseline)


def test_explain_prints_words_scores_movers_and_writes_a_png(trained_run):
    result = CliRunner().invoke(main, ["explain", "--run", str(trained_run), "--top", "2",
                                       "the", "zorblax", "was", "wonderful"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("probability ")
    assert any(line.split()[1:2] == ["zorblax"] and line.endswith("(unknown word)") for line in lines)
    movers = lines[lines.index("moved the score most:") + 1:-1]
    assert len(movers) == 2
    drawn_whole(trained_run / runs.EXPLAIN, FIGSIZE)  # about 1200 x 450, nothing cut at its edges


def test_explain_json_and_truncation(trained_run, tmp_path):
    long_review = " ".join(["wonderful", "boring"] * 30)  # 60 words; the tiny config's maxlen is 40
    out = tmp_path / "strip.png"
    result = CliRunner().invoke(main, ["explain", "--run", str(trained_run), "--json", "--out", str(out), long_review])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert len(payload["tokens"]) == 40 and payload["dropped"] == 21  # start token + 20 words cut
    assert payload["tokens"][0]["word"] == "wonderful"  # truncating: pre keeps the ending
    assert out.exists()


@pytest.mark.parametrize("text, message", [("", "is empty"), ("zorblax quux", "no word in the model's vocabulary")])
def test_explain_refuses_what_it_cannot_score(trained_run, text, message):
    result = CliRunner().invoke(main, ["explain", "--run", str(trained_run), text])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def fake_run(trained_run, tmp_path, layers, bucketing=True, classes=2):
    """A run folder holding a random model of another shape, with the tiny run's vocabulary."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(trained_run / runs.VOCABULARY, run_dir)
    config = yaml.safe_load((trained_run / runs.CONFIG).read_text())
    config["data"]["bucketing"] = bucketing
    (run_dir / runs.CONFIG).write_text(yaml.safe_dump(config))
    model = build_model(ModelConfig(embedding_dim=8, layers=layers), 40, mask_zero=bucketing, classes=classes)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape) for w in model.get_weights()])
    model.save(run_dir / runs.MODEL)
    return run_dir


def test_bidirectional_scores_each_prefix_and_says_so(trained_run, tmp_path):
    run_dir = fake_run(trained_run, tmp_path, (LayerConfig(type="gru", units=4, bidirectional=True),))
    explanation = explain_review(run_dir, REVIEW)
    ids, _ = Vocabulary.load(run_dir / runs.VOCABULARY).encode(REVIEW)
    assert "cut off after that word" in explanation.shown
    for k in (2, len(ids)):
        assert explanation.scores[k - 1] == pytest.approx(model_probability(run_dir, ids[:k]), abs=1e-5)


def test_unmasked_pre_padded_model_reads_its_padding_first(trained_run, tmp_path):
    run_dir = fake_run(trained_run, tmp_path, (LayerConfig(type="lstm", units=4),), bucketing=False)
    explanation = explain_review(run_dir, REVIEW)
    ids, _ = Vocabulary.load(run_dir / runs.VOCABULARY).encode(REVIEW)
    padded = np.concatenate([np.zeros(40 - len(ids), dtype=np.int32), ids])
    assert explanation.probability == pytest.approx(model_probability(run_dir, padded), abs=1e-5)
    assert explanation.scores[-1] == pytest.approx(explanation.probability, abs=1e-9)


def test_inspect_lists_shapes_parameters_and_equations(trained_run):
    result = CliRunner().invoke(main, ["inspect", "--run", str(trained_run)])
    assert result.exit_code == 0, result.output
    model = keras.saving.load_model(trained_run / runs.MODEL)
    assert f"total: {model.count_params():,} parameters" in result.output
    assert "simple_rnn_0: SimpleRNN(8), 136 parameters" in result.output  # 8*8 + 8*8 + 8
    assert "recurrent_kernel  (8, 8)" in result.output
    assert "h_t = tanh(W @ x_t + U @ h_(t-1) + b)" in result.output
    assert "head: Dense(1, sigmoid), 9 parameters" in result.output


@pytest.mark.parametrize("bidirectional", [False, True])
def test_more_than_two_classes_trace_the_models_class_or_the_one_asked(trained_run, tmp_path, bidirectional):
    run_dir = fake_run(trained_run, tmp_path, (LayerConfig(type="gru", units=4, bidirectional=bidirectional),),
                       classes=3)
    files.write_json(run_dir / runs.CLASSES, {"classes": ["food", "music", "sport"]})
    model = keras.saving.load_model(run_dir / runs.MODEL)
    ids, _ = Vocabulary.load(run_dir / runs.VOCABULARY).encode(REVIEW)
    probabilities = model.predict(np.asarray([ids]), verbose=0)[0]
    explanation = explain_review(run_dir, REVIEW)
    assert explanation.label == explanation.traced == ["food", "music", "sport"][int(probabilities.argmax())]
    assert explanation.probability == pytest.approx(float(probabilities.max()), abs=1e-5)
    sport = explain_review(run_dir, REVIEW, "sport")
    assert sport.traced == "sport" and sport.probability == pytest.approx(float(probabilities[2]), abs=1e-5)
    prefix = model.predict(np.asarray([ids[:3]]), verbose=0)[0]
    assert sport.scores[2] == pytest.approx(float(prefix[2]), abs=1e-5)  # the score after the third token
    result = CliRunner().invoke(main, ["explain", "--run", str(run_dir), "--class", "jazz", REVIEW])
    assert result.exit_code == 2 and "--class 'jazz': not a class of this run (food, music, sport)" in result.output


def test_the_first_of_two_classes_traces_one_minus_the_head(trained_run):
    positive, negative = explain_review(trained_run, REVIEW), explain_review(trained_run, REVIEW, "negative")
    assert negative.probability == pytest.approx(1 - positive.probability)
    assert negative.asked and not positive.asked and negative.label == positive.label


def test_a_run_with_word_pairs_loads_in_a_new_process_and_explains(tmp_path, tiny_config, imdb_archive):
    """The pairs layer is the project's own: a fresh `rnn inspect` process must know it to load the model."""
    import subprocess
    import sys

    from tests.conftest import cli_train

    run_dir = tmp_path / "pairs"
    result = cli_train(run_dir, tiny_config, imdb_archive, "--epochs", "1", "--set", "model.bigram_buckets=101")
    assert result.exit_code == 0, result.output
    done = subprocess.run([sys.executable, "-m", "rnn_cli.cli", "inspect", "--run", str(run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "bigrams: WordPairs(101, 8)" in done.stdout and "P: one row per bucket of word pairs" in done.stdout
    explanation = explain_review(run_dir, REVIEW)
    ids, _ = Vocabulary.load(run_dir / runs.VOCABULARY).encode(REVIEW)
    assert explanation.probability == pytest.approx(model_probability(run_dir, ids), abs=1e-5)
