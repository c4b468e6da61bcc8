import json

import pytest

from rnn_cli import checkpoints, files, runs
from rnn_cli.compare import compare, markdown_table, text_table
from rnn_cli.errors import UserError
from tests.conftest import invoke


def fake_run(folder, name, accuracies, test_accuracy, seconds=2.0, parameters=1234):
    folder.mkdir(parents=True)
    (folder / runs.CONFIG).write_text(f"name: {name}\n")
    history = [{"epoch": e, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.5, "val_accuracy": a,
                "learning_rate": 0.001, "seconds": seconds + e} for e, a in enumerate(accuracies, start=1)]
    checkpoints.write_history(folder, history)
    files.write_json(folder / runs.RUN_RECORD, {"status": "finished", "device": "cpu", "parameters": parameters,
                                               "timings": {"train_seconds": 60.0 * len(accuracies)}})
    files.write_json(folder / runs.METRICS, {"accuracy": test_accuracy})
    return folder


def test_one_row_per_run_with_best_epoch_and_median_seconds(tmp_path):
    a = fake_run(tmp_path / "a", "lstm", [0.80, 0.86, 0.84], 0.85)
    (row,) = compare([a])
    assert row["name"] == "lstm" and row["epochs"] == 3 and row["parameters"] == 1234
    assert (row["best_val_accuracy"], row["best_epoch"], row["test_accuracy"]) == (0.86, 2, 0.85)
    assert row["seconds_per_epoch"] == 4.0 and row["train_minutes"] == 3.0


def test_the_device_column_names_a_backend_other_than_tensorflow(tmp_path):
    tf_run, jax_run = fake_run(tmp_path / "a", "lstm", [0.8], 0.8), fake_run(tmp_path / "b", "lstm", [0.8], 0.8)
    files.write_json(jax_run / runs.RUN_RECORD, {**files.read_json(jax_run / runs.RUN_RECORD), "backend": "jax"})
    rows = compare([tf_run, jax_run])
    assert [row["backend"] for row in rows] == ["tensorflow", "jax"]  # a run from before backends: TensorFlow
    table = markdown_table(rows)
    assert "| cpu (jax) |" in table and "| cpu |" in table


def test_seconds_per_epoch_leaves_out_the_epochs_that_compiled(tmp_path):
    run = fake_run(tmp_path / "a", "lstm", [0.80, 0.86, 0.84, 0.85], 0.85)  # epochs of 3, 4, 5, 6 s
    record = files.read_json(run / runs.RUN_RECORD)
    files.write_json(run / runs.RUN_RECORD, {**record, "timings": {**record["timings"], "warmup_epochs": [1, 3]}})
    assert compare([run])[0]["seconds_per_epoch"] == 5.0  # median of epochs 2 and 4
    files.write_json(run / runs.RUN_RECORD, {**record, "timings": {**record["timings"], "warmup_epochs": [1, 2, 3, 4]}})
    assert compare([run])[0]["seconds_per_epoch"] == 4.5  # nothing else left: all of them


def test_seed_group_is_one_row_with_mean_and_spread(tmp_path):
    group = tmp_path / "g"
    for seed, (best, test) in zip((42, 43, 44), [(0.80, 0.79), (0.84, 0.81), (0.82, 0.80)]):
        fake_run(group / f"seed-{seed}", "simple_rnn", [0.5, best], test)
    files.write_json(group / runs.SEEDS_SUMMARY, {"seeds": [42, 43, 44]})
    (row,) = compare([group])
    assert row["runs"] == 3
    assert row["best_val_accuracy"] == pytest.approx(0.82) and row["best_val_accuracy_std"] == pytest.approx(0.02)
    assert row["test_accuracy"] == pytest.approx(0.80) and row["test_accuracy_std"] == pytest.approx(0.01)
    assert "0.8200 ± 0.0200" in markdown_table([row]) and "0.8000 ± 0.0100" in text_table([row])
    assert row["best_epoch"] == [2, 2, 2] and "| 2, 2, 2 |" in markdown_table([row])


def test_default_is_every_run_and_group_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path / "runs" / "x", "x", [0.7], 0.7)
    fake_run(tmp_path / "runs" / "g" / "seed-1", "y", [0.6], 0.6)
    files.write_json(tmp_path / "runs" / "g" / runs.SEEDS_SUMMARY, {"seeds": [1]})
    rows = compare([])
    assert sorted(row["name"] for row in rows) == ["x", "y"]
    table = markdown_table(rows).splitlines()
    assert table[0].startswith("| config | data | runs | parameters |") and len(table) == 4
    json.dumps(rows)  # --json prints these rows as they are


def test_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        compare([tmp_path])


def test_runs_of_one_config_show_the_settings_they_differ_in(tmp_path):
    review = fake_run(tmp_path / "a", "lstm", [0.86], 0.85)
    movie = fake_run(tmp_path / "b", "lstm", [0.84], 0.86)
    (movie / runs.CONFIG).write_text("name: lstm\ndata: {validation_by: movie}\n")
    group = tmp_path / "g"  # seeds of one config: their train.seed is not a difference
    for seed in (42, 43):
        fake_run(group / f"seed-{seed}", "lstm", [0.85], 0.85)
        (group / f"seed-{seed}" / runs.CONFIG).write_text(
            f"name: lstm\ntrain: {{seed: {seed}, ema_momentum: 0.99}}\nmodel: {{layers: [{{type: lstm, units: 64}}]}}\n")
    files.write_json(group / runs.SEEDS_SUMMARY, {"seeds": [42, 43]})
    other = fake_run(tmp_path / "c", "gru", [0.8], 0.8)
    (other / runs.CONFIG).write_text("name: gru\ndata: {validation_by: movie}\n")

    rows = compare([review, movie, group, other])
    assert rows[0]["settings"] == {"data.validation_by": "review", "model.layers.0.type": "simple_rnn",
                                   "model.layers.0.units": 32, "train.ema_momentum": None, "train.seed": 42}
    assert rows[1]["settings"]["data.validation_by"] == "movie"
    assert rows[2]["settings"] == {"data.validation_by": "review", "model.layers.0.type": "lstm",
                                   "model.layers.0.units": 64, "train.ema_momentum": 0.99}
    assert rows[3]["settings"] == {}  # the only gru: nothing to tell apart
    table = markdown_table(rows).splitlines()
    assert table[0].startswith("| config | settings | data | runs |")
    assert "| lstm | data.validation_by=review model.layers.0.type=lstm model.layers.0.units=64 " \
           "train.ema_momentum=0.99 | keras | 2 |" in table[4]
    assert "train.ema_momentum=null" in table[2] and "| gru |  | keras | 1 |" in table[5]
    assert text_table(rows).splitlines()[0].split()[:4] == ["config", "settings", "data", "runs"]
    assert "settings" not in markdown_table(rows[3:])  # no column when no names repeat


def test_compare_prints_a_table_of_runs(trained_run):
    result = invoke("compare", trained_run)
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()
    assert header.split()[:4] == ["config", "data", "runs", "parameters"]
    assert row.split()[:3] == ["tiny", "aclimdb", "aclImdb_v1.tar.gz"]
    rows = json.loads(invoke("compare", trained_run, "--json").output)
    assert rows[0]["epochs"] == 3 and rows[0]["test_accuracy"] >= 0.75


def test_macro_f1_shows_beside_accuracy_once_a_run_has_more_than_two_classes(tmp_path):
    binary = fake_run(tmp_path / "a", "imdb", [0.8], 0.85)
    assert "macro-F1" not in text_table(compare([binary]))
    topics = fake_run(tmp_path / "b", "topics", [0.7], 0.75)
    files.write_json(topics / runs.CLASSES, {"classes": ["food", "music", "sport"]})
    files.write_json(topics / runs.METRICS, {"accuracy": 0.75, "macro_f1": 0.7321})
    table = markdown_table(compare([binary, topics]))
    assert "| test acc | test macro-F1 |" in table and "| 0.7500 | 0.7321 |" in table


def test_the_data_column_tells_imdb_and_own_data_apart_and_values_read_as_a_person_reads_them(tmp_path):
    imdb = fake_run(tmp_path / "a", "lstm", [0.86], 0.85)
    (imdb / runs.CONFIG).write_text("name: lstm\ndata: {source: aclimdb, path: /d/aclImdb_v1.tar.gz, limit: 2000}\n"
                                    "train: {learning_rate: 0.0053421234567891}\n")
    own = fake_run(tmp_path / "b", "lstm", [0.84], 0.86)
    (own / runs.CONFIG).write_text("name: lstm\ndata: {source: csv, path: /home/me/tickets.csv}\n"
                                   "train: {learning_rate: 0.00001}\n")
    rows = compare([imdb, own])
    assert [row["data"] for row in rows] == ["aclimdb aclImdb_v1.tar.gz, limit 2000", "csv tickets.csv"]
    table = markdown_table(rows)
    assert "train.learning_rate=5.34e-3" in table and "train.learning_rate=1.0e-5" in table
    assert "0.00534212" not in table
    assert rows[0]["settings"]["train.learning_rate"] == 0.0053421234567891  # --json keeps every digit


@pytest.mark.parametrize("value, shown", [(0.0053421234567, "5.34e-3"), (0.001, "1.0e-3"), (0.39, "0.39"),
                                          (64.0, "64.0"), (123456.0, "1.23e+5"), (0.0, "0.0"), (-0.0021, "-2.1e-3")])
def test_readable_floats_stay_floats_to_set(value, shown):
    import yaml

    from rnn_cli.compare import readable

    assert readable(value) == shown and isinstance(yaml.safe_load(shown), float)
    assert yaml.safe_load(shown) == pytest.approx(value, rel=5e-3)
