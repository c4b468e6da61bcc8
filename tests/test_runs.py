"""rnn_cli.runs: run folders claimed, found and resumed; a group resumes with its first seed's config."""

import pytest

from rnn_cli import runs
from rnn_cli.config import dump_config, load_config
from rnn_cli.errors import UserError


def test_a_new_run_folder_never_reuses_one(tmp_path):
    first, second = runs.new_run_dir("lstm", tmp_path), runs.new_run_dir("lstm", tmp_path)
    assert first != second and first.name.startswith("lstm-") and second.name.endswith("-2")


def test_a_claimed_folder_must_be_empty(tmp_path):
    assert runs.claim_run_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "new" / "history.csv").write_text("precious\n")
    with pytest.raises(UserError, match="already exists and is not empty"):
        runs.claim_run_dir(tmp_path / "new")


def test_resume_needs_a_finished_epoch_and_takes_the_runs_own_config(tmp_path, tiny_config):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.CONFIG).write_text(dump_config(load_config(tiny_config)))
    with pytest.raises(UserError, match="nothing to resume"):
        runs.resume_target(run, [])
    (run / runs.CHECKPOINT).write_text("")
    assert runs.resume_target(run, ["train.epochs=5"])[1:] == (load_config(tiny_config, ["train.epochs=5"]), False)


def test_a_seed_group_resumes_with_its_first_seeds_config(tmp_path, tiny_config):
    (tmp_path / "seed-7").mkdir()
    (tmp_path / "seed-7" / runs.CONFIG).write_text(dump_config(load_config(tiny_config, ["train.seed=7"])))
    runs.write_json(tmp_path / runs.SEEDS_SUMMARY, {"seeds": [7, 8]})
    folder, config, group = runs.resume_target(tmp_path, [])
    assert (folder, config.train.seed, group) == (tmp_path, 7, True)


def test_the_newest_run_is_the_latest_started(tmp_path):
    with pytest.raises(UserError, match="no run with config.yaml under"):
        runs.newest_run(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / runs.CONFIG).write_text(f"name: {name}\n")
    assert runs.newest_run(tmp_path) == tmp_path / "b" and runs.config_name(tmp_path / "b") == "b"
