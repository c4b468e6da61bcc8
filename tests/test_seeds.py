"""rnn_cli.seeds: a seed group, a process per seed, signals passed on, errors brought back."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from rnn_cli import checkpoints, files, loading, runs
from rnn_cli.config import load_config
from rnn_cli.predict import predict_texts
from rnn_cli.seeds import train_seeds
from tests.conftest import cli_train, invoke
from tests.test_train import InterruptInEpoch


class InterruptSecondRun(InterruptInEpoch):
    """Ctrl-C in epoch 2 of the second training started (a seed group's second seed).

    Each seed trains in a process of its own, with its own copy of this callback: the trainings
    are counted in `log`, one line per training with the id of the process that ran it.
    """

    def __init__(self, log):
        super().__init__(epoch=1)
        self.log = log
        self.trainings = 0

    def on_train_begin(self, logs=None):
        with open(self.log, "a") as log:
            log.write(f"{os.getpid()}\n")
        self.trainings = len(self.log.read_text().splitlines())

    def on_train_batch_end(self, batch, logs=None):
        if self.trainings == 2:
            super().on_train_batch_end(batch, logs)


def test_a_seed_group_trains_a_folder_per_seed_and_resumes_as_a_whole(tmp_path, tiny_config, imdb_archive,
                                                                      monkeypatch):
    """Interrupted in its second seed (rnn train --seeds 3), resumed, summarized: one training for all."""
    import rnn_cli.seeds

    seeds, log = rnn_cli.seeds.train_seeds, tmp_path / "trainings.log"
    with monkeypatch.context() as patch:
        patch.setattr(rnn_cli.seeds, "train_seeds",
                      lambda *args, **kwargs: seeds(*args, callbacks=(InterruptSecondRun(log),), **kwargs))
        group = tmp_path / "group"
        result = cli_train(group, tiny_config, imdb_archive, "--seeds", "3")
    assert result.exit_code == 130
    assert f"interrupted: 1 finished epoch(s) kept in {group / 'seed-43'}" in result.output
    assert f"`rnn train --resume --run {group}`" in result.output  # the group, not the seed
    processes = log.read_text().split()
    assert len(processes) == 2 and len(set(processes)) == 2 and str(os.getpid()) not in processes
    # The seeds' lines come through this process: seed 43's first epoch is the last one.
    lines = result.output.splitlines()
    assert lines[1] == f"seed 42 (1/3): {group / 'seed-42'}"
    assert [line for line in lines if line.startswith("epoch ")][-1].startswith("epoch 1/2 ")
    first, second = checkpoints.read_history(group / "seed-42"), checkpoints.read_history(group / "seed-43")
    assert len(first) == 2 and len(second) == 1
    assert not (group / "seed-44").exists()
    assert files.read_json(group / runs.SEEDS_SUMMARY)["status"] == "interrupted"

    result = invoke("train", "--resume", "--run", group, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "seed 42 (1/3): finished, kept" in result.output and "epoch 2/2" in result.output
    assert checkpoints.read_history(group / "seed-42") == first  # the finished seed is not trained again
    assert [len(checkpoints.read_history(group / f"seed-{s}")) for s in (43, 44)] == [2, 2]
    assert checkpoints.read_history(group / "seed-43")[0] == second[0]  # resumed, not started again
    names = ("seed-42", "seed-43", "seed-44")
    assert sorted(p.name for p in group.iterdir()) == ["MODEL_CARD.md", "curves.png", "metrics.json", *names,
                                                       "seeds.json"]
    histories = [checkpoints.read_history(group / name) for name in names]
    assert histories[0] != histories[1] != histories[2]
    assert [load_config(group / n / runs.CONFIG).train.seed for n in names] == [42, 43, 44]
    summary = files.read_json(group / runs.SEEDS_SUMMARY)
    tests = [files.read_json(group / n / runs.METRICS)["accuracy"] for n in names]
    assert summary["status"] == "finished" and summary["runs"] == 3 and summary["seeds"] == [42, 43, 44]
    assert summary["test_accuracy"] == pytest.approx(sum(tests) / 3)
    assert "3 seeds: test accuracy" in result.output.splitlines()[-1]

    table = invoke("compare", group, "--markdown")
    assert table.exit_code == 0, table.output
    assert "| tiny | aclimdb aclImdb_v1.tar.gz | 3 |" in table.output and " ± " in table.output

    # The group is one model too: the mean of its runs' probabilities, scored on the same test split.
    ensemble = files.read_json(group / runs.METRICS)
    assert summary["ensemble_test_accuracy"] == ensemble["accuracy"]
    assert f"(as one model, the mean of their probabilities: {ensemble['accuracy']:.4f})" in result.output
    assert "ensemble test acc" in table.output and f"| {ensemble['accuracy']:.4f} |" in table.output
    texts = ["a wonderful moving film", "dull and boring, a waste", "the plot was thin but the actors were great"]
    together = predict_texts(loading.Trained.load(group), texts)
    alone = [predict_texts(loading.Trained.load(group / name), texts) for name in names]
    means = [np.mean([run[i]["probability"] for run in alone]) for i in range(len(texts))]
    assert [row["probability"] for row in together] == pytest.approx(means, abs=1e-6)
    assert np.ptp([run[0]["probability"] for run in alone]) > 1e-3  # the seeds differ: the mean is a mean
    scored = invoke("eval", "--run", group, "--json")
    assert scored.exit_code == 0, scored.output
    assert files.read_json(group / runs.EVAL)["accuracy"] == ensemble["accuracy"]
    assert "An ensemble of 3 recurrent text classifiers" in (group / "MODEL_CARD.md").read_text()
    explained = invoke("explain", "--run", group, "--json", texts[0])
    assert explained.exit_code == 0, explained.output
    trace = json.loads(explained.output)
    assert trace["probability"] == pytest.approx(means[0], abs=1e-6) and "the mean of the group's 3 runs'" in trace["shown"]


class InterruptTheParent(keras.callbacks.Callback):
    """A signal to the parent process alone, in epoch 2, as `kill` would send it."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__()
        self.signum = signum

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getppid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_of_the_group_process_alone_reaches_the_seed(tmp_path, tiny, signum):
    group = tmp_path / "group"
    group.mkdir()
    config = tiny("train.epochs=50")
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train_seeds(config, group, 2, device="cpu", echo=lines.append, callbacks=(InterruptTheParent(signum),))
    history = checkpoints.read_history(group / "seed-42")
    assert 1 <= len(history) < 50  # passed on: the seed stopped, and recorded where
    assert files.read_json(group / "seed-42" / "run.json")["status"] == "interrupted"
    # Every finished epoch's line reached this process, those after the interrupt too.
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == [f"{i}/50" for i in
                                                                             range(1, len(history) + 1)]
    assert not (group / "seed-43").exists()
    assert files.read_json(group / "seeds.json")["status"] == "interrupted"


KILL_THE_PARENT = """
import os, signal, sys
from pathlib import Path
import keras
import numpy as np
from rnn_cli.config import load_config
from rnn_cli.predict import predict_texts
from rnn_cli.seeds import train_seeds


class KillTheParent(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getppid(), signal.SIGKILL)

if __name__ == "__main__":
    config_path, archive, group = map(Path, sys.argv[1:])
    config = load_config(config_path, ["data.source=aclimdb", f"data.path={archive}", "train.epochs=50"])
    train_seeds(config, group, 2, device="cpu", echo=print, callbacks=(KillTheParent(),))
"""


def test_a_seed_whose_group_process_is_killed_stops_and_records_it(tmp_path, tiny_config, imdb_archive):
    script = tmp_path / "kill_the_parent.py"  # the child imports the callback's module from here
    script.write_text(KILL_THE_PARENT, encoding="utf-8")
    group = tmp_path / "group"
    group.mkdir()
    done = subprocess.run([sys.executable, script, tiny_config, imdb_archive, group], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    record = group / "seed-42" / "run.json"
    for _ in range(600):  # the orphaned seed records where it stopped, then ends
        if json.loads(record.read_text()).get("status") != "running":
            break
        time.sleep(0.1)
    assert json.loads(record.read_text())["status"] == "interrupted"
    assert 1 <= len(checkpoints.read_history(group / "seed-42")) < 50


class SignalInEpoch2(keras.callbacks.Callback):
    """A Ctrl-C to the seed's own process during fit, as a terminal sends it."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_signal_during_fit_stops_the_seed_at_its_next_batch(tmp_path, tiny):
    group = tmp_path / "group"
    group.mkdir()
    config = tiny("train.epochs=5")
    with pytest.raises(KeyboardInterrupt):
        train_seeds(config, group, 2, device="cpu", echo=lambda line: None, callbacks=(SignalInEpoch2(),))
    assert len(checkpoints.read_history(group / "seed-42")) == 1
    assert files.read_json(group / "seed-42" / "run.json")["status"] == "interrupted"


class FailInEpoch2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise ValueError("broken callback")


def test_an_error_in_a_seed_process_is_raised_in_the_group_with_its_traceback(tmp_path, tiny):
    group = tmp_path / "group"
    group.mkdir()
    config = tiny()
    with pytest.raises(ValueError, match="broken callback") as err:
        train_seeds(config, group, 2, device="cpu", echo=lambda line: None, callbacks=(FailInEpoch2(),))
    (note,) = err.value.__notes__
    assert note.startswith("in the training process:")
    assert 'raise ValueError("broken callback")' in note  # the child's traceback, down to the line
    record = files.read_json(group / "seed-42" / "run.json")
    assert record["status"] == "failed" and record["error"] == "ValueError: broken callback"
    assert len(checkpoints.read_history(group / "seed-42")) == 1  # the finished epoch is kept
    assert files.read_json(group / "seeds.json")["status"] == "failed"


def test_a_seed_group_of_three_classes_reports_macro_f1(tmp_path):
    from tests.conftest import topic_rows, write_table
    from tests.test_train import OWN_CONFIG

    data = write_table(tmp_path / "own.jsonl", topic_rows(["sport", "music", "food"], 30))
    (tmp_path / "own.yaml").write_text(OWN_CONFIG)
    group = tmp_path / "group"
    result = cli_train(group, tmp_path / "own.yaml", data, "--seeds", "2", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert [files.read_json(group / f"seed-{s}" / runs.CLASSES)["classes"] for s in (42, 43)] == [
        ["food", "music", "sport"]] * 2
    table = invoke("compare", group, "--markdown")
    assert "test macro-F1" in table.output and "| own | jsonl own.jsonl | 2 |" in table.output
    assert files.read_json(group / runs.SEEDS_SUMMARY)["test_macro_f1"] is not None
