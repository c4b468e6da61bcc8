"""rnn_cli's Python API (rnn_cli/api.py): the docs/python.md walkthrough on tiny data, and a training
stopped from Python (Ctrl-C) and resumed from Python to the history of one never stopped."""

import os
import shutil
import signal
import sys
import threading
import time

import matplotlib.figure
import numpy as np
import pytest

import rnn_cli
from rnn_cli import checkpoints, files, runs
from rnn_cli.errors import UserError
from rnn_cli.predict import predict_texts


def rows_of(history) -> list[dict]:
    """The history's rows without their seconds, from a DataFrame (pandas installed) or a list."""
    rows = history.reset_index().to_dict("records") if hasattr(history, "reset_index") else history
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_the_walkthrough(tmp_path, tiny_config, imdb_archive):
    run = rnn_cli.train(tiny_config, data=imdb_archive, epochs=3, run=tmp_path / "run", device="cpu", quiet=True)
    assert run.path == tmp_path / "run" and run.metrics["accuracy"] >= 0.75
    history = run.history
    assert list(history.index) == [1, 2, 3] and "val_accuracy" in history.columns  # pandas: a DataFrame
    assert rows_of(history) == rows_of(checkpoints.read_history(run.path))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "pandas", None)  # as where pandas is not installed: the rows themselves
        assert run.history == checkpoints.read_history(run.path)

    predicted = run.predict(["a wonderful film", "an awful film"])
    assert predicted == predict_texts(run.path, ["a wonderful film", "an awful film"])
    assert run.predict("a wonderful film") == predicted[:1]
    explanation = run.explain("a wonderful film")
    assert explanation.probability == pytest.approx(predicted[0]["probability"], abs=1e-6)

    metrics = run.evaluate()
    assert metrics["accuracy"] == pytest.approx(run.metrics["accuracy"], abs=1e-9)
    figure = run.plot()
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) == 2
    figure.savefig(tmp_path / "curves.png")
    exported = run.export(out=tmp_path / "exported")  # rnn export's SavedModel, loaded back and checked
    assert exported == tmp_path / "exported" / "1" and (exported / "saved_model.pb").exists()

    again = rnn_cli.load(run.path)
    assert again == run and rows_of(again.history) == rows_of(history) and again.config.train.epochs == 3
    with pytest.raises(UserError, match="not a run folder"):
        rnn_cli.load(tmp_path)
    with pytest.raises(UserError, match="model.pooling"):  # the command's own message, from Python
        rnn_cli.train(tiny_config, data=imdb_archive, overrides={"model.pooling": "median"}, run=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(UserError, match="Keras is loaded on tensorflow in this process already"):
        rnn_cli.train(tiny_config, data=imdb_archive, overrides={"train.backend": "jax"}, run=tmp_path / "jax")
    assert not (tmp_path / "jax").exists()


def test_stopped_from_python_and_resumed_from_python_as_if_never_stopped(tmp_path, tiny_config, imdb_archive):
    whole = rnn_cli.train(tiny_config, data=imdb_archive, epochs=4, run=tmp_path / "whole", device="cpu", quiet=True)
    stopped = tmp_path / "stopped"

    def press_ctrl_c_after_the_first_epoch():
        while not (stopped / runs.HISTORY_JSON).exists() or not checkpoints.read_history(stopped):
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_after_the_first_epoch, daemon=True)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        rnn_cli.train(tiny_config, data=imdb_archive, epochs=4, run=stopped, device="cpu", quiet=True)
    presser.join(timeout=10)
    kept = checkpoints.read_history(stopped)
    assert 1 <= len(kept) < 4 and files.read_json(stopped / runs.RUN_RECORD)["status"] == "interrupted"

    resumed = rnn_cli.resume(stopped, device="cpu", quiet=True)
    assert rows_of(resumed.history) == rows_of(whole.history)
    assert np.isclose(resumed.metrics["accuracy"], whole.metrics["accuracy"])


def test_a_seed_group_and_a_study_load_as_runs(tiny_group, trained_run, tmp_path):
    group = rnn_cli.load(tiny_group)
    history = group.history
    assert [run for run, _ in history.index] == [f.name for f in runs.members(tiny_group) for _ in range(2)]
    assert len(group.members) == 2 and len(group.plot().axes) == 2
    assert group.predict("a wonderful film")[0]["probability"] == pytest.approx(
        np.mean([member.predict("a wonderful film")[0]["probability"] for member in group.members]), abs=1e-6)

    study = tmp_path / "study"
    for trial in ("trial-0", "trial-1"):
        shutil.copytree(trained_run, study / trial)
    (study / runs.STUDY).write_text("{}")
    loaded = rnn_cli.load(study)
    assert [m.path for m in loaded.members] == [study / "trial-0", study / "trial-1"]
    assert set(run for run, _ in loaded.history.index) == {"trial-0", "trial-1"}
    assert len(loaded.plot().axes) == 2
    for use in (lambda: loaded.predict("a wonderful film"), lambda: loaded.metrics, lambda: loaded.evaluate()):
        with pytest.raises(UserError, match="a study of 2 trials, each a model of its own"):
            use()
