"""rnn_cli.evaluate through `rnn eval`."""

import json

import pytest

from rnn_cli import files
from rnn_cli.evaluate import metrics_table
from tests.conftest import invoke


def test_eval_prints_metrics_and_writes_eval_json(trained_run):
    result = invoke("eval", "--run", trained_run)
    assert result.exit_code == 0, result.output
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "actual pos"):
        assert name in result.output
    for figure in ("confusion.png", "roc_pr.png", "reliability.png"):
        assert (trained_run / figure).read_bytes()[:4] == b"\x89PNG"
    written = files.read_json(trained_run / "eval.json")
    assert written["reviews"] == 50
    assert written["accuracy"] == pytest.approx(files.read_json(trained_run / "metrics.json")["accuracy"])


def test_eval_json_with_limit_and_model_file(trained_run):
    result = invoke("eval", "--model", trained_run / "model.keras", "--limit", "10", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["reviews"] == 10
    assert sum(metrics["confusion_matrix"].values()) == 10


def test_eval_defaults_to_the_newest_run(trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "no run with model.keras under runs/" in invoke("eval").output
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "tiny").symlink_to(trained_run)
    result = invoke("eval", "--json")
    assert result.exit_code == 0, result.output


def test_metrics_table_shows_auc_as_not_available_for_one_class():
    metrics = {"reviews": 2, "loss": 0.5, "accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0,
               "roc_auc": None, "expected_calibration_error": 0.25, "confusion_matrix": {"true_negative": 1, "false_positive": 1,
                                                     "false_negative": 0, "true_positive": 0}}
    lines = metrics_table(metrics).splitlines()
    assert lines[6] == "roc_auc    n/a (one class only)"
    assert lines[-2].split() == ["actual", "neg", "1", "1"]
