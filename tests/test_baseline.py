"""rnn baseline: the linear model on a config's own data and split, as a run folder rnn compare shows."""

import json

import pytest

from rnn_cli import runs
from tests.conftest import invoke, topic_rows, write_table


@pytest.mark.parametrize("classes", [["neg", "pos"], ["sport", "music", "food"]])
def test_the_baseline_learns_the_data_and_compare_shows_it(tmp_path, tiny_config, classes):
    data = write_table(tmp_path / "d.csv", topic_rows(classes, 60))
    result = invoke("baseline", "--config", tiny_config, "--data", data, "--run", tmp_path / "base")
    assert result.exit_code == 0, result.output
    assert "C 4: val_accuracy" in result.output and "test accuracy" in result.output
    assert ("naive-Bayes" in result.output) == (len(classes) == 2)
    folder = tmp_path / "base"
    assert {p.name for p in folder.iterdir()} == {"config.yaml", "classes.json", "metrics.json", "run.json",
                                                  "confusion.png", "MODEL_CARD.md"}
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: tiny-baseline\n") and "| accuracy |" in card and "chosen on validation" in card
    metrics = runs.read_mapping(folder / runs.METRICS)
    assert metrics["accuracy"] > 1 / len(classes) + 0.3  # the classes' own words are in the texts
    assert runs.read_classes(folder) == tuple(sorted(classes))
    record = runs.read_mapping(folder / runs.RUN_RECORD)
    assert record["kind"] == "baseline" and record["C"] in (4.0, 16.0, 64.0)
    assert record["val_accuracy"] == max(record["val_accuracy_by_C"].values())  # chosen on validation
    (row,) = json.loads(invoke("compare", folder, "--json").output)
    assert row["name"] == "tiny-baseline" and row["test_accuracy"] == metrics["accuracy"]
    assert row["best_val_accuracy"] == record["val_accuracy"] and row["epochs"] == 0
    predicted = invoke("predict", "--run", folder, "some text")
    assert predicted.exit_code == 2 and "a baseline run (rnn baseline)" in predicted.output


def test_the_baseline_uses_the_split_training_uses(tmp_path, tiny_config):
    from rnn_cli.config import load_config
    from rnn_cli.data import load_data

    data = write_table(tmp_path / "d.csv", topic_rows(["sport", "music"], 40))
    assert invoke("baseline", "--config", tiny_config, "--data", data, "--run", tmp_path / "base").exit_code == 0
    config = load_config(tiny_config, ["data.source=csv", f"data.path={data}"])
    sizes = runs.read_mapping(tmp_path / "base" / runs.RUN_RECORD)["data"]["sizes"]
    splits = load_data(config.data)
    assert sizes == {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}


def test_bad_input_is_one_line_and_leaves_no_folder(tmp_path, tiny_config):
    data = write_table(tmp_path / "d.csv", topic_rows(["sport", "music"], 10))
    for extra, says in ((["--set", "data.validation_split=2"], "--set data.validation_split=2: 2.0 is out of range"),
                        (["--set", "data.label_column=stars"], "no column 'stars'")):
        result = invoke("baseline", "--config", tiny_config, "--data", data, "--run", tmp_path / "base", *extra)
        assert result.exit_code == 2 and says in result.output, result.output
        assert not (tmp_path / "base").exists()
