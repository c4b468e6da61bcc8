"""MODEL_CARD.md: written when a training finishes, refreshed by rnn eval."""

import re
from pathlib import Path

from rnn_cli import runs
from rnn_cli.card import CARD, architecture
from rnn_cli.config import load_config
from tests.conftest import invoke


def test_training_writes_the_card_and_eval_refreshes_it(trained_run, tmp_path):
    card = (trained_run / CARD).read_text(encoding="utf-8")
    metrics = runs.read_mapping(trained_run / runs.METRICS)
    assert card.startswith("# Model card: tiny\n")
    assert "Embedding(40, 8) -> SimpleRNN(8) -> Dense(1, sigmoid)" in card
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in card and "from `rnn train`" in card
    cm = metrics["confusion_matrix"]
    assert f"| negative | {cm['true_negative']} | {cm['false_positive']} |" in card
    assert "at most 40 tokens" in card and "English movie reviews" in card
    assert re.search(r"Reviews: \d+ to train on, \d+ to validate", card)
    result = invoke("eval", "--run", trained_run, "--limit", "20")
    assert result.exit_code == 0, result.output
    refreshed = (trained_run / CARD).read_text(encoding="utf-8")
    assert "from `rnn eval`" in refreshed and "| reviews | 20 |" in refreshed


def test_architecture_names_every_layer(tiny):
    config = tiny("model.layers=[{type: lstm, units: 16, bidirectional: true}, {type: gru, units: 8}]")
    assert architecture(config, 3) == "Embedding(40, 8) -> Bidirectional(LSTM(16)) -> GRU(8) -> Dense(3, softmax)"
    book = load_config(Path(__file__).parent.parent / "configs" / "simple_rnn.yaml")
    assert architecture(book, 2) == "Embedding(10000, 32) -> SimpleRNN(32) -> Dense(1, sigmoid)"
