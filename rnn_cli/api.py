"""rnn-cli from Python, for a notebook: `train` a config into a run folder, or `load` one, and look at the
`Run`: its history, predictions, explanations, scores, curves and exports. The same library the `rnn`
commands call, with their guarantees (every finished epoch committed, the folder locked, Ctrl-C keeping
what finished, the backend chosen before Keras loads) and their errors (`rnn_cli.errors.UserError`,
with the same messages). docs/python.md walks through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rnn_cli import checkpoints, files, loading, runs
from rnn_cli.config import Config, config_from_dict, load_config, to_dict
from rnn_cli.errors import UserError


def train(config: str | Path | Config, data: str | Path | None = None, *, epochs: int | None = None,
          limit: int | None = None, overrides: dict | None = None, run: str | Path | None = None,
          seeds: int | None = None, device: str = "auto", quiet: bool = False) -> Run:
    """Train `config` (a YAML path, or a Config) as `rnn train --config` does; returns the run (the group,
    with `seeds`). `data`, `epochs`, `limit`, `run`, `seeds` and `device` are the command's options;
    `overrides` its --set, as {"train.batch_size": 64}. Progress and the epochs are printed unless `quiet`.
    A KeyboardInterrupt (Ctrl-C, the notebook's stop button) keeps every finished epoch: `resume` goes on."""
    from rnn_cli import launch
    from rnn_cli.data import data_overrides

    sets = [f"{key}={value}" for key, value in (overrides or {}).items()]
    sets += data_overrides(Path(data) if data is not None else None, limit)
    sets += [f"train.epochs={epochs}"] if epochs else []
    config = (config_from_dict(to_dict(config), sets) if isinstance(config, Config)
              else load_config(Path(config), sets))
    plan = launch.new_launch(config, Path(run) if run is not None else None, seeds)
    return _train(plan, device, quiet)


def resume(run: str | Path | None = None, *, epochs: int | None = None, device: str = "auto",
           quiet: bool = False) -> Run:
    """Continue a stopped run or seed group (default: the newest) from its last finished epoch, as
    `rnn train --resume`; `epochs` raises its train.epochs."""
    from rnn_cli import launch

    plan = launch.resumed_launch(Path(run) if run is not None else None, [f"train.epochs={epochs}"] if epochs else [])
    return _train(plan, device, quiet)


def _train(plan, device: str, quiet: bool) -> Run:
    from rnn_cli import launch

    echo: Callable[[str], None] = (lambda line: None) if quiet else print
    try:
        launch.train_launch(plan, device, echo=echo, progress=False if quiet else None)
    except KeyboardInterrupt:
        echo(launch.interrupted_message(plan).strip())
        raise
    return Run(plan.run_dir)


def load(path: str | Path | None = None) -> Run:
    """A run folder, seed group or `rnn tune` study (default: the newest run under runs/)."""
    folder = Path(path) if path is not None else runs.newest_run(needs=runs.MODEL)
    if not folder.is_dir() or not (runs.is_group(folder) or (folder / runs.CONFIG).exists()
                                   or (folder / runs.STUDY).exists()):
        raise UserError(f"{folder}: not a run folder (no {runs.CONFIG}), seed group or study")
    return Run(folder)


@dataclass(frozen=True)
class Run:
    """A run folder, seed group or study on disk; every property reads it afresh. A seed group is one
    model (the mean of its seeds' probabilities); a study's trials are models of their own (`members`)."""

    path: Path

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def is_study(self) -> bool:
        return (self.path / runs.STUDY).exists()

    @property
    def history(self):
        """One row per finished epoch (loss, accuracy, val_loss, val_accuracy, seconds...): a pandas
        DataFrame indexed by epoch when pandas is installed, else a list of dicts. A seed group's or a
        study's: every run's rows, each with its `run` (the folder under this one), indexed by run and epoch."""
        folders = runs.members(self.path)
        several = self.is_study or runs.is_group(self.path)
        rows = [{**({"run": str(folder.relative_to(self.path))} if several else {}), **row}
                for folder in folders for row in checkpoints.read_history(folder)]
        try:
            import pandas
        except ImportError:
            return rows
        index = ["run", "epoch"] if several else ["epoch"]
        return pandas.DataFrame(rows).set_index(index) if rows else pandas.DataFrame(rows)

    @property
    def members(self) -> list[Run]:
        """The runs of a seed group or a study (its groups' seeds included), or this run alone."""
        return [Run(folder) for folder in runs.members(self.path)]

    @property
    def metrics(self) -> dict:
        """The test metrics written at the end of training (metrics.json; a seed group's: as one model)."""
        self._one_model()
        return files.read_json(self.path / runs.METRICS)

    @property
    def config(self) -> Config:
        self._one_model()
        return load_config(loading.model_source(self.path) / runs.CONFIG)

    def _one_model(self) -> None:
        if self.is_study:
            raise UserError(f"{self.path}: a study of {len(runs.study_trials(self.path))} trials, each a model of "
                            "its own: load one of them (Run.members, or rnn_cli.load of its folder)")

    def _trained(self):
        self._one_model()
        loading.use_backend_of(self.path)
        return loading.Trained.of(self.path)

    def predict(self, texts: str | list[str]) -> list[dict]:
        """A label and a probability per text, as `rnn predict --json` prints them."""
        from rnn_cli.predict import predict_texts

        return predict_texts(self._trained(), [texts] if isinstance(texts, str) else list(texts))

    def explain(self, text: str, traced: str | None = None):
        """The model's score after each word of `text` (rnn_cli.explain.Explanation); `traced`: a class."""
        from rnn_cli.explain import explain_review

        return explain_review(self._trained(), text, traced)

    def evaluate(self, data: str | Path | None = None, limit: int | None = None) -> dict:
        """Score the model on its test split (or `data`'s), as `rnn eval` does, without writing files."""
        self._one_model()
        loading.use_backend_of(self.path)
        from rnn_cli.data import data_overrides
        from rnn_cli.evaluate import evaluate_run

        return evaluate_run(self.path, None, data_overrides(Path(data) if data else None, limit)).metrics

    def plot(self):
        """The loss and accuracy curves (of every seed in a group) as a matplotlib Figure: a notebook
        shows it inline; `.savefig(path)` writes it."""
        from rnn_cli.plots import history_figure

        folders = runs.members(self.path)
        curves = [(f"{runs.config_name(folder)} ({folder.relative_to(self.path)})" if len(folders) > 1
                   else runs.config_name(folder), checkpoints.read_history(folder)) for folder in folders]
        return history_figure(curves)

    def export(self, fmt: str = "saved_model", out: str | Path | None = None, force: bool = False) -> Path:
        """`rnn export`: fmt "saved_model" (the tokeniser inside), "onnx" or "litert"; returns its path."""
        from rnn_cli.export import export_run

        self._one_model()
        return export_run(self.path, fmt, Path(out) if out is not None else None, echo=print, force=force)
