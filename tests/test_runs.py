"""rnn_cli.runs: run folders claimed, found and resumed; a group resumes with its first seed's config."""

import json
import os
import subprocess
import sys

import pytest

from rnn_cli import checkpoints, files, loading, runs
from rnn_cli.config import dump_config, load_config
from rnn_cli.errors import UserError


def test_a_new_run_folder_never_reuses_one(tmp_path):
    first, second = runs.new_run_dir("lstm", tmp_path), runs.new_run_dir("lstm", tmp_path)
    assert first != second and first.name.startswith("lstm-") and second.name.endswith("-2")


def test_a_claimed_folder_must_be_empty_and_is_locked_until_given_up(tmp_path):
    assert runs.claim_run_dir(tmp_path / "new") == tmp_path / "new"
    with pytest.raises(UserError, match=f"new: in use by process {os.getpid()} "):
        runs.claim_run_dir(tmp_path / "new")  # a second open of the lock file conflicts, even here
    runs.unlock(tmp_path / "new")
    assert list((tmp_path / "new").iterdir()) == []  # the lock file goes with the lock
    (tmp_path / "new" / "history.csv").write_text("precious\n")
    with pytest.raises(UserError, match="already exists and is not empty"):
        runs.claim_run_dir(tmp_path / "new")
    assert not (tmp_path / "new" / runs.LOCK).exists()


def test_a_folder_held_by_another_process_names_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"in use by process {holder.pid} "):
            runs.lock(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    runs.lock(tmp_path)  # its holder gone, the folder is free (the lock file it left is taken over)
    runs.unlock(tmp_path)


HOLD = """
import sys, time
from pathlib import Path
from rnn_cli import runs
runs.lock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


def test_resume_takes_the_runs_own_config_and_holds_the_folder(tmp_path, tiny_config):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.CONFIG).write_text(dump_config(load_config(tiny_config)))
    assert checkpoints.resume_target(run, ["train.epochs=5"]) == (run, load_config(tiny_config, ["train.epochs=5"]), False)
    with pytest.raises(UserError, match="in use by process"):
        checkpoints.resume_target(run, [])
    runs.unlock(run)


def history(epochs):
    return [{"epoch": e, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.5, "val_accuracy": 0.7 + e / 100,
             "learning_rate": 0.001, "seconds": 1.0} for e in range(1, epochs + 1)]


def test_an_epoch_is_committed_by_its_history_and_recovered_from_any_crash(tmp_path):
    def save(text):
        return lambda path: path.write_text(text)

    checkpoints.commit_epoch(tmp_path, history(1), save("epoch 1"), save("best 1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [runs.BEST_WEIGHTS, runs.CHECKPOINT, "history.csv",
                                                          "history.json"]
    # A crash after epoch 2's checkpoint was written, before its history: epoch 1 is what is committed.
    (tmp_path / ".checkpoint-2.keras").write_text("epoch 2")
    assert len(checkpoints.recover(tmp_path)) == 1
    assert (tmp_path / runs.CHECKPOINT).read_text() == "epoch 1" and not (tmp_path / ".checkpoint-2.keras").exists()
    # A crash after epoch 2's history, before its files took their names: epoch 2 is committed.
    checkpoints.write_history(tmp_path, history(2))
    (tmp_path / ".checkpoint-2.keras").write_text("epoch 2")
    (tmp_path / ".best-2.weights.h5").write_text("best 2")
    assert len(checkpoints.recover(tmp_path)) == 2
    assert (tmp_path / runs.CHECKPOINT).read_text() == "epoch 2"
    assert (tmp_path / runs.BEST_WEIGHTS).read_text() == "best 2"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("text", ["{}", "[1, 2]", '[{"epoch": 1}]', "[" + json.dumps(history(2)[1]) + "]"])
def test_a_history_of_the_wrong_shape_is_one_line(tmp_path, text):
    (tmp_path / runs.HISTORY_JSON).write_text(text)
    with pytest.raises(UserError, match="history.json: damaged or not written by rnn train"):
        checkpoints.read_history(tmp_path)


def test_run_records_of_the_wrong_shape_are_one_line(tmp_path):
    (tmp_path / runs.RUN_RECORD).write_text("[]")
    with pytest.raises(UserError, match="run.json: damaged"):
        runs.RunRecord(tmp_path)
    files.write_json(tmp_path / runs.SEEDS_SUMMARY, {"seeds": "42"})
    with pytest.raises(UserError, match="seeds.json: damaged"):
        checkpoints.resume_target(tmp_path, [])
    assert not (tmp_path / runs.LOCK).exists()


@pytest.mark.parametrize("settings, epochs, message", [
    ([], 1, "--epochs 1: the run has 2 finished epoch\\(s\\) already"),
    (["train.schedule=cosine"], 4, "cosine decays the rate to 0 over the run's 2 epochs"),
])
def test_resume_refuses_an_epoch_count_it_cannot_honour(tmp_path, tiny_config, settings, epochs, message):
    (tmp_path / runs.CONFIG).write_text(dump_config(load_config(tiny_config, settings)))
    checkpoints.write_history(tmp_path, history(2))
    with pytest.raises(UserError, match=message):
        checkpoints.resume_target(tmp_path, [f"train.epochs={epochs}"])
    assert not (tmp_path / runs.LOCK).exists()


def test_a_seed_group_resumes_with_its_first_seeds_config(tmp_path, tiny_config):
    (tmp_path / "seed-7").mkdir()
    (tmp_path / "seed-7" / runs.CONFIG).write_text(dump_config(load_config(tiny_config, ["train.seed=7"])))
    files.write_json(tmp_path / runs.SEEDS_SUMMARY, {"seeds": [7, 8]})
    folder, config, group = checkpoints.resume_target(tmp_path, [])
    assert (folder, config.train.seed, group) == (tmp_path, 7, True)


def test_the_newest_run_is_the_latest_started(tmp_path):
    with pytest.raises(UserError, match="no run with config.yaml under"):
        runs.newest_run(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / runs.CONFIG).write_text(f"name: {name}\n")
    assert runs.newest_run(tmp_path) == tmp_path / "b" and runs.config_name(tmp_path / "b") == "b"


def test_a_seed_group_is_one_model_only_once_every_run_is_finished(tmp_path):
    (tmp_path / runs.SEEDS_SUMMARY).write_text('{"seeds": [42, 43]}')
    (tmp_path / "seed-42").mkdir()
    with pytest.raises(UserError, match=rf"a seed group not finished \(seed-42, seed-43 without model.keras\).*"
                                        rf"--resume --run {tmp_path}`, or use one run, e.g. --run {tmp_path}/seed-42$"):
        loading.load_trained(tmp_path)
    (tmp_path / runs.SEEDS_SUMMARY).write_text('{"seeds": [true]}')
    with pytest.raises(UserError, match="seeds.json.*expected a list of seeds"):
        loading.load_trained(tmp_path)
