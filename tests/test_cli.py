"""The commands end to end on tiny data, through click's CliRunner."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest
import yaml
from click.testing import CliRunner

from rnn_cli import runs, stopping
from rnn_cli.cli import main
from rnn_cli.config import load_config
from rnn_cli.seeds import train_seeds
from rnn_cli.train import RunRecorder, train

RUN_FILES = {"config.yaml", "history.csv", "history.json", "model.keras", "checkpoint.keras", "curves.png",
             "vocab.json", "summary.txt", "run.json", "metrics.json"}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def tiny_train(run_dir, tiny_config, imdb_archive, *extra):
    return invoke("train", "--config", tiny_config, "--data", imdb_archive, "--run-dir", run_dir,
                  "--device", "cpu", *extra)


def test_train_writes_every_run_file(trained_run, imdb_archive):
    assert RUN_FILES <= {p.name for p in trained_run.iterdir()}
    assert not [p for p in trained_run.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    mask = os.umask(0)
    os.umask(mask)
    assert {p.stat().st_mode & 0o777 for p in trained_run.iterdir()} == {0o666 & ~mask}
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["train"]["epochs"] == 3 and config["data"]["source"] == "aclimdb"
    assert config["data"]["path"] == str(imdb_archive.resolve())

    rows = list(csv.DictReader((trained_run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == list(runs.HISTORY_COLUMNS)
    history = json.loads((trained_run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert all(0 <= row["val_accuracy"] <= 1 and row["seconds"] > 0 for row in history)
    assert history[0]["learning_rate"] == pytest.approx(0.01)

    record = json.loads((trained_run / "run.json").read_text())
    assert record["status"] == "finished" and record["device"] == "cpu" and record["seed"] == 42
    assert record["data"]["sizes"] == {"train": 160, "val": 40, "test": 50, "vocabulary": 25, "skipped": 0}
    assert {"tensorflow", "keras", "python"} <= set(record["versions"])
    assert record["timings"]["train_seconds"] > 0 and record["epochs_done"] == 3

    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["reviews"] == 50 and 0 <= metrics["accuracy"] <= 1
    assert "Parameters before the Dense head" in (trained_run / "summary.txt").read_text()
    # Every word of the tiny data fits under num_words 40.
    assert len(json.loads((trained_run / "vocab.json").read_text())["words"]) == 22


def test_tiny_model_learns_the_signal(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.75, metrics


def test_output_is_one_line_per_epoch_without_a_terminal(tmp_path, tiny_config, imdb_archive):
    result = tiny_train(tmp_path / "run", tiny_config, imdb_archive)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert "batches: length buckets of 40 tokens, padding masked; XLA on" in result.output
    assert lines[-1].startswith("test accuracy ")
    assert "\r" not in result.output  # no progress-bar redraws in a log


def test_quiet_prints_only_the_result(tmp_path, tiny_config, imdb_archive):
    result = tiny_train(tmp_path / "run", tiny_config, imdb_archive, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert result.output.startswith("test accuracy ")


def test_same_seed_gives_the_same_history(tmp_path, tiny_config, imdb_archive):
    histories = []
    for name in ("a", "b"):
        assert tiny_train(tmp_path / name, tiny_config, imdb_archive).exit_code == 0
        rows = runs.read_history(tmp_path / name)
        histories.append([{k: v for k, v in row.items() if k != "seconds"} for row in rows])
    assert histories[0] == histories[1]
    result = tiny_train(tmp_path / "c", tiny_config, imdb_archive, "--set", "train.seed=7")
    assert result.exit_code == 0
    other = [{k: v for k, v in row.items() if k != "seconds"} for row in runs.read_history(tmp_path / "c")]
    assert other != histories[0]


class InterruptInEpoch(keras.callbacks.Callback):
    """Ctrl-C in the middle of an epoch, as a user would press it."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            raise KeyboardInterrupt


def test_interrupted_run_keeps_its_epochs_and_resumes(tmp_path, tiny_config, imdb_archive):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}", "train.epochs=4"])
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir, device="cpu", echo=lambda line: None, callbacks=(InterruptInEpoch(2),))
    assert [row["epoch"] for row in runs.read_history(run_dir)] == [1, 2]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert keras.saving.load_model(run_dir / "checkpoint.keras").optimizer.iterations.numpy() == 2 * 20
    before = runs.read_history(run_dir)

    result = invoke("train", "--resume", "--run-dir", run_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    history = runs.read_history(run_dir)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[:2] == before  # finished epochs are kept as they were
    assert "epoch 3/4" in result.output and "epoch 1/4" not in result.output
    # Optimizer state went on from the checkpoint: 20 steps an epoch (160 reviews, batch 8).
    assert keras.saving.load_model(run_dir / "checkpoint.keras").optimizer.iterations.numpy() == 4 * 20
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"

    more = invoke("train", "--resume", "--run-dir", run_dir, "--epochs", "5", "--device", "cpu")
    assert more.exit_code == 0, more.output
    assert [row["epoch"] for row in runs.read_history(run_dir)] == [1, 2, 3, 4, 5]
    assert load_config(run_dir / "config.yaml").train.epochs == 5


def test_ctrl_c_in_the_test_evaluation_keeps_the_run_resumable(tmp_path, tiny_config, imdb_archive, monkeypatch):
    import rnn_cli.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}"])
    with monkeypatch.context() as patch:
        patch.setattr(rnn_cli.train, "evaluate_model", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(config, run_dir, device="cpu", echo=lambda line: None)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert not (run_dir / "metrics.json").exists()

    result = invoke("train", "--resume", "--run-dir", run_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    # Every epoch was done: only the evaluation is left (no epoch lines, nor the line about compiling).
    assert not any(line.startswith(("epoch ", "batches: ")) for line in result.output.splitlines())
    assert len(runs.read_history(run_dir)) == 2 and (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_a_signal_in_the_test_evaluation_waits_for_the_end_of_a_batch(tmp_path, tiny_config, imdb_archive,
                                                                       monkeypatch):
    import rnn_cli.train

    seen = []

    class SignalInFirstBatch(keras.callbacks.Callback):
        def on_predict_batch_begin(self, batch, logs=None):
            seen.append(batch)
            if batch == 0:
                signal.raise_signal(signal.SIGINT)
                seen.append("went on")  # not raised here, inside Keras' loop, but at the batch's end

    scored = rnn_cli.train.evaluate_model

    def evaluate(*args, callbacks=(), **kwargs):
        return scored(*args, callbacks=[SignalInFirstBatch(), *callbacks], **kwargs)

    monkeypatch.setattr(rnn_cli.train, "evaluate_model", evaluate)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}", "train.epochs=1"])
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals():
        train(config, run_dir, device="cpu", echo=lambda line: None)
    assert seen == [0, "went on"]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert not (run_dir / "metrics.json").exists() and len(runs.read_history(run_dir)) == 1


def test_a_checkpoint_from_before_the_filled_short_batch_resumes_unfilled(tmp_path, tiny_config, imdb_archive,
                                                                         monkeypatch):
    """Its loss averages over rows: zero-weight copies would change its steps, so none are added."""
    import rnn_cli.model
    import rnn_cli.train

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}", "train.epochs=1"])
    with monkeypatch.context() as patch:
        patch.setattr(rnn_cli.model, "LOSS_REDUCTION", "sum_over_batch_size")  # the loss of earlier versions
        train(config, run_dir, device="cpu", echo=lambda line: None)
    filled, made = [], rnn_cli.train.Batches

    def batches(*args, **kwargs):
        filled.append(kwargs.get("filled", False))
        return made(*args, **kwargs)

    monkeypatch.setattr(rnn_cli.train, "Batches", batches)
    result = invoke("train", "--resume", "--run-dir", run_dir, "--epochs", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert filled[0] is False and len(runs.read_history(run_dir)) == 2  # filled[0]: the training batches


def test_early_stopping_counts_patience_from_the_history(tmp_path):
    from rnn_cli.config import TrainConfig, EarlyStoppingConfig

    history = [{"epoch": e, "val_accuracy": a} for e, a in enumerate([0.6, 0.8, 0.7, 0.8], start=1)]
    recorder = RunRecorder(tmp_path, TrainConfig(early_stopping=EarlyStoppingConfig(patience=2)),
                           history, print)
    assert recorder.best_epoch() == 2  # ties keep the earlier epoch, as Keras' EarlyStopping does
    assert recorder.patience_exhausted()
    recorder.history = history[:3]
    assert not recorder.patience_exhausted()


def test_restore_best_saves_the_best_epoch_as_the_model(tmp_path, tiny_config, imdb_archive):
    result = tiny_train(tmp_path / "run", tiny_config, imdb_archive, "--epochs", "4",
                        "--set", "train.early_stopping.restore_best=true", "--set", "train.learning_rate=0.05")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "run"
    history = runs.read_history(run_dir)
    best = max(history, key=lambda r: (r["val_accuracy"], -r["epoch"]))
    assert json.loads((run_dir / "run.json").read_text())["best_epoch"] == best["epoch"]
    model = keras.saving.load_model(run_dir / "model.keras")
    last = keras.saving.load_model(run_dir / "checkpoint.keras")
    model_weights = [w.numpy() for w in model.weights]
    model.load_weights(run_dir / "best.weights.h5")
    assert all((a == b.numpy()).all() for a, b in zip(model_weights, model.weights))
    differs = any((a != b.numpy()).any() for a, b in zip(model_weights, last.weights))
    assert differs == (best["epoch"] != len(history))


def test_train_never_overwrites_a_run(tmp_path, tiny_config, imdb_archive):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "history.csv").write_text("precious\n")
    result = tiny_train(tmp_path / "run", tiny_config, imdb_archive)
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert (tmp_path / "run" / "history.csv").read_text() == "precious\n"


def test_default_run_folder_is_named_after_the_config(tmp_path, tiny_config, imdb_archive, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        result = invoke("train", "--config", tiny_config, "--data", imdb_archive, "--epochs", "1", "-q")
        assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(name.startswith("tiny-") for name in folders)


@pytest.mark.parametrize("seeds", [[], ["--seeds", "2"]], ids=["run", "seed group"])
def test_bad_data_is_one_line_exit_2_and_leaves_no_run(tmp_path, tiny_config, seeds):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    result = tiny_train(tmp_path / "run", tiny_config, junk, *seeds)
    assert result.exit_code == 2
    # A seed group meets it in its first seed's own process, and reports it the same way.
    assert "junk.tar.gz: not a readable aclImdb archive" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_bad_config_is_reported_before_tensorflow_loads(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("train: {epochs: 0}\n")
    code = ("import sys\nfrom click.testing import CliRunner\nfrom rnn_cli.cli import main\n"
            f"result = CliRunner().invoke(main, ['train', '--config', {str(config)!r}])\n"
            "print(result.exit_code, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["2", "False"]


def test_gpu_without_a_gpu_is_a_clear_error(tmp_path, tiny_config, imdb_archive):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    result = invoke("train", "--config", tiny_config, "--data", imdb_archive, "--run-dir", tmp_path / "r",
                    "--device", "gpu")
    assert result.exit_code == 2
    assert "--device gpu: TensorFlow sees no GPU" in result.output


def test_resume_refuses_a_new_config(tmp_path, tiny_config):
    result = invoke("train", "--resume", "--run-dir", tmp_path, "--config", tiny_config)
    assert result.exit_code == 2 and "only --epochs may change" in result.output


def test_eval_prints_metrics_and_writes_eval_json(trained_run):
    result = invoke("eval", "--run", trained_run)
    assert result.exit_code == 0, result.output
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "actual pos"):
        assert name in result.output
    written = json.loads((trained_run / "eval.json").read_text())
    assert written["reviews"] == 50
    assert written["accuracy"] == pytest.approx(json.loads((trained_run / "metrics.json").read_text())["accuracy"])


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


def test_predict_scores_reviews(trained_run):
    result = invoke("predict", "--run", trained_run, "--json",
                    "A great, wonderful and moving film. Loved it!", "Boring, dull and awful. A waste.")
    assert result.exit_code == 0, result.output
    positive, negative = (json.loads(line) for line in result.output.strip().splitlines())
    assert positive["label"] == "positive" and negative["label"] == "negative"
    assert positive["probability"] > 0.5 > negative["probability"]


def test_predict_empty_and_unknown_text_get_a_clear_answer(trained_run, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\nxylophone quasar\nsuperb film\n", encoding="utf-8")
    result = invoke("predict", "--run", trained_run, "--file", reviews)
    assert result.exit_code == 0, result.output
    lines = result.output.strip("\n").splitlines()
    assert len(lines) == 3
    assert "empty review" in lines[0]
    assert "no word of this review is in the model's vocabulary" in lines[1]
    assert lines[2].split()[1] in ("positive", "negative")


def test_predict_says_when_a_review_is_truncated(trained_run):
    long_review = " ".join(["great film"] * 30)  # 60 words, maxlen 40
    result = invoke("predict", "--run", trained_run, "--json", long_review)
    assert json.loads(result.output)["note"] == "long review: only its last 40 words were read (maxlen 40)"


def test_predict_needs_text(trained_run):
    result = invoke("predict", "--run", trained_run)
    assert result.exit_code == 2 and "give review TEXT" in result.output


def test_summary_prints_the_book_parameter_count():
    result = invoke("summary", "--config", "configs/simple_rnn.yaml")
    assert result.exit_code == 0, result.output
    assert "Parameters before the Dense head: 322,080" in result.output


def test_seeds_trains_one_folder_per_seed_and_summarizes(tmp_path, tiny_config, imdb_archive):
    group = tmp_path / "group"
    result = tiny_train(group, tiny_config, imdb_archive, "--seeds", "2", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in group.iterdir()) == ["curves.png", "seed-42", "seed-43", "seeds.json"]
    histories = [runs.read_history(group / name) for name in ("seed-42", "seed-43")]
    assert all(len(h) == 1 for h in histories) and histories[0] != histories[1]
    assert [load_config(group / n / "config.yaml").train.seed for n in ("seed-42", "seed-43")] == [42, 43]
    summary = json.loads((group / "seeds.json").read_text())
    tests = [json.loads((group / n / "metrics.json").read_text())["accuracy"] for n in ("seed-42", "seed-43")]
    assert summary["runs"] == 2 and summary["seeds"] == [42, 43]
    assert summary["test_accuracy"] == pytest.approx(sum(tests) / 2)
    assert "2 seeds: test accuracy" in result.output.splitlines()[-1]

    table = invoke("compare", group, "--markdown")
    assert table.exit_code == 0, table.output
    assert "| tiny | 2 |" in table.output and " ± " in table.output


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


def test_interrupted_seed_group_resumes_as_a_whole(tmp_path, tiny_config, imdb_archive):
    group = tmp_path / "group"
    group.mkdir()
    config = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}"])
    log = tmp_path / "trainings.log"
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train_seeds(config, group, 3, device="cpu", echo=lines.append, callbacks=(InterruptSecondRun(log),))
    processes = log.read_text().split()
    assert len(processes) == 2 and len(set(processes)) == 2 and str(os.getpid()) not in processes
    # The children's lines come to this process' echo: seed 43's first epoch is the last one.
    assert lines[0] == f"seed 42 (1/3): {group / 'seed-42'}" and lines[-1].startswith("epoch 1/2 ")
    first, second = runs.read_history(group / "seed-42"), runs.read_history(group / "seed-43")
    assert len(first) == 2 and len(second) == 1
    assert not (group / "seed-44").exists()
    assert json.loads((group / "seeds.json").read_text())["status"] == "interrupted"

    result = invoke("train", "--resume", "--run-dir", group, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "seed 42 (1/3): finished, kept" in result.output and "epoch 2/2" in result.output
    assert runs.read_history(group / "seed-42") == first  # the finished seed is not trained again
    assert [len(runs.read_history(group / f"seed-{s}")) for s in (43, 44)] == [2, 2]
    assert runs.read_history(group / "seed-43")[0] == second[0]  # resumed, not started again
    assert load_config(group / "seed-44" / "config.yaml").train.seed == 44
    summary = json.loads((group / "seeds.json").read_text())
    assert summary["status"] == "finished" and summary["runs"] == 3
    assert "3 seeds: test accuracy" in result.output.splitlines()[-1]


class InterruptTheParent(keras.callbacks.Callback):
    """A signal to the parent process alone, in epoch 2, as `kill` would send it."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__()
        self.signum = signum

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getppid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_of_the_group_process_alone_reaches_the_seed(tmp_path, tiny_config, imdb_archive, signum):
    group = tmp_path / "group"
    group.mkdir()
    config = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}", "train.epochs=50"])
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train_seeds(config, group, 2, device="cpu", echo=lines.append, callbacks=(InterruptTheParent(signum),))
    history = runs.read_history(group / "seed-42")
    assert 1 <= len(history) < 50  # passed on: the seed stopped, and recorded where
    assert json.loads((group / "seed-42" / "run.json").read_text())["status"] == "interrupted"
    # Every finished epoch's line reached this process, those after the interrupt too.
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == [f"{i}/50" for i in
                                                                             range(1, len(history) + 1)]
    assert not (group / "seed-43").exists()
    assert json.loads((group / "seeds.json").read_text())["status"] == "interrupted"


KILL_THE_PARENT = """
import os, signal, sys
from pathlib import Path
import keras
from rnn_cli.config import load_config
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
    assert 1 <= len(runs.read_history(group / "seed-42")) < 50


class SignalNoted(keras.callbacks.Callback):
    """A Ctrl-C as the seed's handler notes it during fit: the flag set, no exception raised."""

    def on_epoch_begin(self, epoch, logs=None):
        import rnn_cli.stopping

        if epoch == 1:
            rnn_cli.stopping._STOPPED.set()


def test_a_signal_during_fit_stops_the_seed_at_its_next_batch(tmp_path, tiny_config, imdb_archive):
    group = tmp_path / "group"
    group.mkdir()
    config = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}", "train.epochs=5"])
    with pytest.raises(KeyboardInterrupt):
        train_seeds(config, group, 2, device="cpu", echo=lambda line: None, callbacks=(SignalNoted(),))
    assert len(runs.read_history(group / "seed-42")) == 1
    assert json.loads((group / "seed-42" / "run.json").read_text())["status"] == "interrupted"


class FailInEpoch2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise ValueError("broken callback")


def test_an_error_in_a_seed_process_is_raised_in_the_group_with_its_traceback(tmp_path, tiny_config,
                                                                               imdb_archive):
    group = tmp_path / "group"
    group.mkdir()
    config = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}"])
    with pytest.raises(ValueError, match="broken callback") as err:
        train_seeds(config, group, 2, device="cpu", echo=lambda line: None, callbacks=(FailInEpoch2(),))
    (note,) = err.value.__notes__
    assert note.startswith("in the training process:")
    assert 'raise ValueError("broken callback")' in note  # the child's traceback, down to the line
    record = json.loads((group / "seed-42" / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == "ValueError: broken callback"
    assert len(runs.read_history(group / "seed-42")) == 1  # the finished epoch is kept
    assert json.loads((group / "seeds.json").read_text())["status"] == "failed"


def test_ctrl_c_in_a_seed_group_names_the_stopped_seed_and_the_group(tmp_path, tiny_config, imdb_archive,
                                                                     monkeypatch):
    import rnn_cli.seeds

    seeds = rnn_cli.seeds.train_seeds
    log = tmp_path / "trainings.log"
    monkeypatch.setattr(rnn_cli.seeds, "train_seeds",
                        lambda *args, **kwargs: seeds(*args, callbacks=(InterruptSecondRun(log),), **kwargs))
    group = tmp_path / "group"
    result = tiny_train(group, tiny_config, imdb_archive, "--seeds", "2")
    assert result.exit_code == 130
    assert f"interrupted: 1 finished epoch(s) kept in {group / 'seed-43'}" in result.output
    assert f"`rnn train --resume --run-dir {group}`" in result.output  # the group, not the seed


class TerminateInEpoch2(keras.callbacks.Callback):
    """SIGTERM to this process in epoch 2, as `kill` or a batch system's time limit sends it."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_rnn_train_as_ctrl_c_does(tmp_path, tiny_config, imdb_archive, monkeypatch):
    import rnn_cli.train

    training = rnn_cli.train.train
    monkeypatch.setattr(rnn_cli.train, "train",
                        lambda *args, **kwargs: training(*args, callbacks=(TerminateInEpoch2(),), **kwargs))
    run_dir = tmp_path / "run"
    result = tiny_train(run_dir, tiny_config, imdb_archive, "--epochs", "50")
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert f"interrupted: 1 finished epoch(s) kept in {run_dir}" in result.output
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handed back


def test_plot_writes_curves_into_the_run_and_compares_runs(trained_run, tmp_path):
    (trained_run / "curves.png").unlink()  # rnn train wrote one; plot writes it again
    result = invoke("plot", "--run", trained_run)
    assert result.exit_code == 0, result.output
    assert (trained_run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "both.png"
    result = invoke("plot", "--run", trained_run, "--run", trained_run, "--out", out)
    assert result.exit_code == 0 and out.exists()


def test_plot_without_history_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("plot", "--run", tmp_path / "empty")
    assert result.exit_code == 2 and "no finished epoch to plot" in result.output


def test_compare_prints_a_table_of_runs(trained_run):
    result = invoke("compare", trained_run)
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()
    assert header.split()[:3] == ["config", "runs", "parameters"] and row.startswith("tiny ")
    rows = json.loads(invoke("compare", trained_run, "--json").output)
    assert rows[0]["epochs"] == 3 and rows[0]["test_accuracy"] >= 0.75
