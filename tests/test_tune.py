"""rnn tune: the search space checked like a config, trials as run folders, pruning, a report, a
worker killed and the study continued, and two workers on one PostgreSQL study."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from rnn_cli import checkpoints, runs
from rnn_cli.config import load_config
from rnn_cli.study import open_study
from rnn_cli.tune import run_trial
from tests.conftest import invoke
from tests.test_plots import drawn_whole

SPACE = """\
train.learning_rate: {log_uniform: [1.0e-3, 3.0e-2]}
model.layers.0.units: {int: [4, 12], step: 4}
model.layers.0.type: {choice: [simple_rnn, gru]}
"""


@pytest.fixture
def study_setup(tmp_path, monkeypatch, tiny_config, imdb_archive):
    """A folder to work in (runs/ goes there), the space file, and the options every study takes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(SPACE, encoding="utf-8")
    return ["--config", tiny_config, "--space", tmp_path / "space.yaml", "--data", imdb_archive,
            "--epochs", "2", "--device", "cpu"]


@pytest.mark.parametrize("space, says", [
    ("train.learnin_rate: {uniform: [0.1, 0.2]}", "unknown key 'train.learnin_rate'; did you mean 'learning_rate'?"),
    ("model.layers.0.units: {int: [0, 8]}", "space.yaml: model.layers.0.units: 0 is out of range; expected an integer >= 1"),
    ("model.layers.3.units: {int: [4, 8]}", "space.yaml: model.layers.3: index 3 is outside the list of 1 item(s)"),
    ("train.optimizer: {choice: [adam, nesterov]}", "'nesterov' is not allowed; allowed: rmsprop, adam, adamw, sgd"),
    ("train.learning_rate: {log_uniform: [0, 0.1]}", "log_uniform: the range must be above 0"),
    ("train.learning_rate: {uniform: [0.2, 0.1]}", "expected [low, high], two finite numbers with low < high"),
    ("train.learning_rate: {uniform: [0.1, .inf]}", "expected [low, high], two finite numbers with low < high"),
    ("data.seed: {int: [-3, 5]}", "space.yaml: data.seed: -3 is out of range; expected an integer >= 0"),
    ("train.batch_size: {int: [16, 64], log: true, step: 16}", "log: true needs int with low above 0 and no step"),
    ("train.batch_size: {range: [16, 64]}", "expected one of uniform, log_uniform, int, choice"),
    ("train.batch_size: {int: [16, 64], steps: 16}", "unknown setting(s) steps for int"),
    ("[1, 2]", "a search space is a mapping of config keys to ranges"),
    ("train.epochs: {int: [1, 3]}\ntrain.epochs: {int: [1, 4]", "cannot read it as YAML"),
])
def test_a_bad_space_is_one_line(study_setup, tmp_path, space, says):
    (tmp_path / "space.yaml").write_text(space, encoding="utf-8")
    result = invoke("tune", *study_setup)
    assert result.exit_code == 2, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing half-made


def test_a_study_trains_its_trials_as_runs_and_reports_them(study_setup, tmp_path):
    result = invoke("tune", *study_setup, "--trials", "3", "--study", "s", "--set", "train.tensorboard=true")
    assert result.exit_code == 0, result.output
    study = tmp_path / "runs" / "s"
    trials = sorted(p.name for p in study.glob("trial-*"))
    assert trials == ["trial-000", "trial-001", "trial-002"]
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    events = EventMultiplexer().AddRunsFromDirectory(str(study))
    events.Reload()
    records = events.PluginRunToTagToContent("hparams")  # the HParams dashboard's records, one per trial
    assert sorted(records) == [f"{name}/tensorboard/validation" for name in trials]
    assert all(b"train.learning_rate" in tags["_hparams_/session_start_info"] for tags in records.values())
    assert "epoch_accuracy" in events.Runs()["trial-000/tensorboard/validation"]["tensors"]
    for name in trials:
        record = runs.read_mapping(study / name / runs.RUN_RECORD)
        assert record["status"] == "finished" and len(checkpoints.read_history(study / name)) == 2
        assert not (study / name / runs.METRICS).exists()  # trials never see the test split
    search = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study / "study.journal"))))
    best = search.best_trial
    assert best.value == max(checkpoints.best_row(checkpoints.read_history(study / name))["val_accuracy"] for name in trials)
    tuned = load_config(study / "best.yaml")
    assert tuned.train.learning_rate == best.params["train.learning_rate"]
    assert tuned.model.layers[0].type == best.params["model.layers.0.type"] and tuned.train.epochs == 2
    assert f"best: trial {best.number}, val_accuracy {best.value:.4f}" in result.output

    shown = invoke("tune", "--report", "--study", "s")
    assert shown.exit_code == 0, shown.output
    header = next(line for line in shown.output.splitlines() if line.startswith("trial "))
    assert header.split()[:6] == ["trial", "state", "val", "acc", "train.learning_rate", "model.layers.0.units"]
    assert "importance of each key for val_accuracy" in shown.output
    assert (study / "optimization_history.png").stat().st_size > 0 and (study / "val_accuracy_by_key.png").exists()
    for figure in ("optimization_history.png", "val_accuracy_by_key.png"):
        drawn_whole(study / figure)
    assert invoke("tune", "--report").output == shown.output  # the newest study, as other commands' newest run
    table = invoke("compare", "--json")
    assert sorted(Path(row["path"]).name for row in json.loads(table.output)) == trials

    changed = invoke("tune", *study_setup, "--epochs", "3", "--study", "s")
    assert changed.exit_code == 2 and "started with another config or space" in changed.output
    more = invoke("tune", "--study", "s", "--trials", "4")  # continued, with its own config and space
    assert more.exit_code == 0, more.output
    assert "3 of 4 trials finished" in more.output and (study / "trial-003").is_dir()
    assert not (study / "trial-004").exists()


def test_seeds_make_each_trial_a_seed_group_scored_by_its_mean_and_timeout_starts_no_more(study_setup, tmp_path):
    """--timeout: Optuna starts no trial after it (one under way finishes), so a tiny one gives one trial
    however many --trials asks for; --seeds 2: that trial is a seed group, scored by its seeds' mean."""
    result = invoke("tune", *study_setup, "--trials", "5", "--timeout", "0.001", "--seeds", "2", "--study", "g")
    assert result.exit_code == 0, result.output
    study = tmp_path / "runs" / "g"
    assert sorted(p.name for p in study.glob("trial-*")) == ["trial-000"]
    seeds = runs.members(study / "trial-000")
    assert [runs.read_mapping(seed / runs.RUN_RECORD)["seed"] for seed in seeds] == [42, 43]
    bests = [checkpoints.best_row(checkpoints.read_history(seed))["val_accuracy"] for seed in seeds]
    search = optuna.load_study(study_name="g", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study / "study.journal"))))
    assert search.best_trial.value == pytest.approx(sum(bests) / 2)
    assert "--seeds 3: study g scores trials over 2 seed(s)" in invoke("tune", "--study", "g", "--seeds", "3").output


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_a_pruned_trial_stops_as_sigterm_stops_a_run(study_setup, tmp_path, tiny_config, imdb_archive):
    base = load_config(tiny_config, ["data.source=aclimdb", f"data.path={imdb_archive}", "train.epochs=3"])
    study = open_study("p", base, tmp_path / "space.yaml", None, None)
    search = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    lines = []
    search.optimize(lambda trial: run_trial(trial, study, "cpu", lines.append), n_trials=1)
    assert search.trials[0].state == optuna.trial.TrialState.PRUNED
    folder = study.folder / "trial-000"
    assert runs.read_mapping(folder / runs.RUN_RECORD)["status"] == "pruned"
    assert len(checkpoints.read_history(folder)) == 1 and (folder / runs.CHECKPOINT).exists()  # resumable
    assert lines[-1].startswith("trial 0: pruned after epoch 1 (val_accuracy ")


def rnn_process(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "rnn_cli.cli", "tune", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_in_training(worker, after: str, signum) -> None:
    """Send `signum` to a tune worker once it prints an epoch line after the line starting `after`."""
    seen = False
    for line in worker.stdout:
        seen = seen or line.startswith(after)
        if seen and line.startswith("  epoch "):
            break
    worker.send_signal(signum)


def wait_until_recorded(folder: Path) -> None:
    """The training of a stopped worker records where it stopped and gives its folder up."""
    deadline = time.time() + 60
    while time.time() < deadline and (runs.read_mapping(folder / runs.RUN_RECORD).get("status") == "running"
                                      or (folder / runs.LOCK).exists()):
        time.sleep(0.5)


def test_a_stopped_or_killed_worker_loses_no_trial_and_the_study_continues(study_setup, tmp_path):
    folder = tmp_path / "runs" / "k" / "trial-001"
    first = rnn_process(*study_setup, "--epochs", "3", "--trials", "2", "--study", "k", cwd=tmp_path)
    stop_in_training(first, "trial 1:", signal.SIGTERM)  # in trial 1's training, after its first epoch
    _, err = first.communicate(timeout=60)
    assert first.returncode == 143 and "interrupted: finished trials are kept; continue with `rnn tune --study k`" in err
    wait_until_recorded(folder)
    assert runs.read_mapping(folder / runs.RUN_RECORD)["status"] == "interrupted"
    kept = checkpoints.read_history(folder)

    second = rnn_process("--study", "k", "--trials", "2", cwd=tmp_path)
    stop_in_training(second, "trial 2:", signal.SIGKILL)  # kill -9, in the continued trial's next epoch
    second.wait(timeout=30)
    wait_until_recorded(folder)
    assert checkpoints.read_history(folder)[:len(kept)] == kept and len(checkpoints.read_history(folder)) > len(kept)

    third = invoke("tune", "--study", "k", "--trials", "2")  # in this process: a third worker, later
    assert third.exit_code == 0, third.output
    assert "trial 2 was stopped: queued again, to continue in runs/k/trial-001" in third.output
    history = checkpoints.read_history(folder)
    assert len(history) == 3 and history[:len(kept)] == kept  # continued from its finished epochs each time
    search = optuna.load_study(study_name="k", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs" / "k" / "study.journal"))))
    assert [t.state.name for t in search.trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert [t.user_attrs.get("continues") for t in search.trials] == [None, None, "trial-001", "trial-001"]
    assert runs.read_mapping(folder / runs.RUN_RECORD)["status"] == "finished"


def with_password(url: str, form: int) -> str:
    """`url` with a password (the test server trusts loopback clients and ignores it), in one of the forms
    SQLAlchemy reads: USER:PASSWORD@, or ?password=."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if form == 0:
        return parsed.set(password=SECRET).render_as_string(hide_password=False)
    return parsed.update_query_dict({"password": SECRET}).render_as_string(hide_password=False)


SECRET = "s3cr3t-Pa55"


def test_two_workers_share_one_postgresql_study(study_setup, tmp_path, postgres_url, monkeypatch):
    # Each worker gives the password in another form; neither proposes a point the other tried.
    workers = [rnn_process(*study_setup, "--trials", "4", "--study", "pg", "--storage", with_password(postgres_url, i),
                           cwd=tmp_path) for i in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert SECRET not in out + err
    search = optuna.load_study(study_name="pg", storage=postgres_url)
    complete = [t for t in search.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 4
    assert {t.user_attrs["pid"] for t in complete} == {worker.pid for worker in workers}  # both worked
    folders = [t.user_attrs["folder"] for t in complete]
    assert len(set(folders)) == len(folders)
    assert all(runs.read_mapping(tmp_path / "runs" / "pg" / f / runs.RUN_RECORD)["status"] == "finished"
               for f in folders)
    elsewhere = tmp_path / "other-machine"  # no runs/pg/ here: the study's settings come from the database
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the commands after the workers run in this process, in their folders
    third = invoke("tune", "--study", "pg", "--storage", postgres_url, "--trials", len(complete) + 1)
    assert third.exit_code == 0, third.output
    assert [p.name for p in (elsewhere / "runs" / "pg").glob("trial-*")] == [f"trial-{len(complete):03d}"]
    monkeypatch.chdir(tmp_path)
    # A continuation where the study began, without --storage: study.json's URL, which keeps no password
    continued = invoke("tune", "--study", "pg", "--trials", len(complete) + 2)
    assert continued.exit_code == 0, continued.output
    report = invoke("tune", "--study", "pg", "--report")
    assert report.exit_code == 0, report.output
    search = optuna.load_study(study_name="pg", storage=postgres_url)
    points = [tuple(sorted(t.params.items())) for t in search.trials]
    assert len(points) >= len(complete) + 2 and len(set(points)) == len(points), points  # no point proposed twice
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".json", ".yaml", ".csv", ".md", ".log")]
    assert written and not [p for p in written if SECRET in p.read_text(errors="replace")]
    assert SECRET not in continued.output + report.output + third.output
    (tmp_path / "third-machine").mkdir()
    monkeypatch.chdir(tmp_path / "third-machine")
    other = invoke("tune", *study_setup, "--epochs", "3", "--study", "pg", "--storage", postgres_url)
    assert other.exit_code == 2 and "its workers train another base config or space" in other.output


@pytest.mark.parametrize("url, shown", [
    ("postgresql://someone:SECRET@127.0.0.1:1/nothing", "postgresql://someone:***@127.0.0.1:1/nothing"),
    ("postgresql://:SECRET@127.0.0.1:1/nothing", "postgresql://:***@127.0.0.1:1/nothing"),
    ("postgresql://someone@127.0.0.1:1/nothing?password=SECRET", "postgresql://someone@127.0.0.1:1/nothing?password=***"),
    ("postgresql+psycopg://:SECRET@127.0.0.1:1/x?sslmode=disable&password=SECRET2",
     "postgresql+psycopg://:***@127.0.0.1:1/x?password=***&sslmode=disable"),
    ("postgresql://someone:SECRET@[::1:1/x", "(a URL that does not parse)"),
])
def test_a_storage_that_cannot_be_reached_is_one_line_without_its_password(study_setup, tmp_path, url, shown):
    result = invoke("tune", *study_setup, "--storage", url)
    assert result.exit_code == 2
    assert f"--storage {shown}:" in result.output and "SECRET" not in result.output, result.output
    assert not (tmp_path / "runs").exists()


def test_a_database_server_that_never_answers_is_one_line_within_its_timeout(study_setup, tmp_path):
    import socket

    from rnn_cli.storage import CONNECT_TIMEOUT, timeouts

    assert timeouts("postgresql://u@h/db")["connect_timeout"] == CONNECT_TIMEOUT
    silent = socket.socket()  # accepts connections (the kernel does) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    with silent:
        started = time.monotonic()
        result = invoke("tune", *study_setup, "--storage",
                        f"postgresql://u:SECRET@127.0.0.1:{silent.getsockname()[1]}/db?connect_timeout=1")
    assert result.exit_code == 2 and "no answer within 1 s" in result.output and "SECRET" not in result.output
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("args, says", [
    (["--report"], "--report shows a study that exists: give --study NAME"),
    (["--study", "none-such"], "no study none-such under runs/: give --config BASE.yaml and --space SPACE.yaml"),
    (["--study", "../out"], "--study '../out': one folder name"),
    (["--storage", "mongodb://x/y"], "--storage mongodb://x/y: expected postgresql://USER:PASSWORD@HOST:PORT/DB"),
])
def test_bad_tune_options_are_one_line(study_setup, tmp_path, args, says):
    setup = study_setup if args[0] in ("--storage", "--report") else []
    result = invoke("tune", *setup, *args)
    assert result.exit_code == 2 and says in result.output, result.output
    assert not (tmp_path / "runs").exists()


def test_trial_figures_count_trials_in_whole_numbers_and_outline_every_point():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnn_cli.tune_report import readable_trials

    figure, axis = plt.subplots()
    points = axis.scatter([0, 1, 2, 3], [0.5, 0.6, 0.55, 0.7], c=[0, 1, 2, 3], cmap="Blues")
    slices, rates = plt.subplots()
    rates.set_xscale("log")
    rates.scatter([0.0012, 0.003, 0.0071], [0.5, 0.6, 0.7])
    readable_trials(figure, by_number=True)
    readable_trials(slices, by_number=False)
    figure.canvas.draw()
    slices.canvas.draw()
    ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert (points.get_edgecolor()[:, :3] == 0).all()  # black outlines: trial 0's pale blue stays visible
    assert axis.get_xlim()[0] < 0 < 3 < axis.get_xlim()[1]  # room around the first and last trial
    labels = [t.get_text() for t in rates.get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"\d\.\de-\d", text) for text in labels), labels
    plt.close(figure)
    plt.close(slices)
