"""rnn_cli.parsing: YAML and JSON read within bounds, through every command that reads them: a document built to
exhaust (aliases that expand a billionfold, nesting thousands deep, a value of megabytes) is one short line."""

import json
import shutil
import time

import pytest

from rnn_cli.parsing import MAX_DEPTH, TooLarge, excerpt, load_json, load_yaml
from tests.conftest import invoke

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9))
DEEP_YAML = "train: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_JSON = "[" * 50_000 + "]" * 50_000


def test_nesting_and_expansion_are_refused_and_what_is_within_bounds_reads():
    within = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_json(within, "j") is not None and load_yaml(within, "y") is not None
    for reader, text in [(load_json, "[" + within + "]"), (load_yaml, "[" + within + "]"), (load_json, DEEP_JSON),
                         (load_yaml, DEEP_YAML), (load_yaml, "&a [*a]")]:
        with pytest.raises(TooLarge, match="nested deeper than 64 levels"):
            reader(text, "here")
    started = time.perf_counter()
    with pytest.raises(TooLarge, match="more than 100,000 values once its aliases"):
        load_yaml(LAUGHS, "here")
    assert time.perf_counter() - started < 5


def test_an_excerpt_is_short_whatever_it_quotes():
    assert excerpt("x" * 10**6).endswith("... (1,000,002 characters)") and len(excerpt("x" * 10**6)) < 100
    assert excerpt([1, 2]) == "[1, 2]"
    assert excerpt([[0] * 10] * 20_000) == "a list of 20,000 item(s)"


def one_short_line(result) -> str:
    """The single line a refused input gets: exit 2, no traceback, short."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 400 and "internal error" not in lines[0], result.output
    return lines[0]


@pytest.mark.parametrize("text, message", [(LAUGHS, "more than 100,000 values"), (DEEP_YAML, "nested deeper"),
                                           ("train: {epochs: " + "x" * 10**6 + "}\n", "expected an integer")])
def test_a_config_built_to_exhaust_is_one_line_in_every_command_that_reads_one(tmp_path, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    (tmp_path / "space.yaml").write_text("train.learning_rate: {log_uniform: [1e-4, 1e-2]}\n")
    for command in (["summary", "--config", config], ["train", "--config", config],
                    ["tune", "--config", config, "--space", tmp_path / "space.yaml"]):
        started = time.perf_counter()
        assert message in one_short_line(invoke(*command))
        assert time.perf_counter() - started < 10


def test_a_set_value_or_tune_space_built_to_exhaust_is_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train: {epochs: 1}\n")
    assert "--set train.epochs: nested deeper" in one_short_line(
        invoke("summary", "--config", config, "--set", "train.epochs=" + "[" * 5000))
    for text, message in [(LAUGHS, "more than 100,000 values"), (DEEP_YAML, "nested deeper"),
                          ("train.seed: {int: [-5, 3]}\n", "train.seed: -5 is out of range"),
                          ("train.learning_rate: {uniform: [0.1, " + "9" * 400 + "]}\n", "two finite numbers with low < high; got [0.1, 99999")]:
        (tmp_path / "space.yaml").write_text(text)
        assert message in one_short_line(invoke("tune", "--config", config, "--space", tmp_path / "space.yaml"))


def test_a_json_lines_row_built_to_exhaust_is_one_line_before_training(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train: {epochs: 1}\n")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "fine", "label": 1})[:-1] + ', "x": ' + DEEP_JSON + "}\n")
    assert "d.jsonl, line 1: nested deeper than 64 levels" in one_short_line(
        invoke("train", "--config", config, "--data", data, "--run", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damaged", ["history.json", "run.json", "metrics.json", "config.yaml"])
def test_a_run_file_built_to_exhaust_is_one_line_in_the_commands_that_read_it(tmp_path, trained_run, damaged):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / damaged).write_text(LAUGHS if damaged.endswith(".yaml") else DEEP_JSON)
    refused = 0
    for command in (["compare", run], ["inspect", "--run", run], ["plot", "--run", run, "--out", tmp_path / "p.png"],
                    ["train", "--resume", "--run", run]):
        result = invoke(*command)
        if result.exit_code != 0:  # a command that does not need the file may leave it unread
            assert damaged in one_short_line(result), result.output
            refused += 1
    assert refused >= 1
