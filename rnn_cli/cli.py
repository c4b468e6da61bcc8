"""The `rnn` command: parse options, load the config, call one library function, print.

Longer than most modules: click keeps each command's options and help text with it, fourteen commands'
worth; the command bodies themselves are short (the work is in the modules they call)."""

from __future__ import annotations

import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

import click

from rnn_cli import __version__
from rnn_cli.config import load_config
from rnn_cli.errors import UserError, require_extra
from rnn_cli.files import log_dir
from rnn_cli.process_settings import CHOICES as DEVICES
from rnn_cli.process_settings import VERBOSE, divert_native_logs, skip_probed_imports
from rnn_cli.stopping import StopExit, end_process, exit_stopped, stop_signals

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXISTING_PATH = click.Path(exists=True, path_type=Path)
DEBUG = "RNN_CLI_DEBUG"  # set (by --debug): an internal error shows its traceback


class Cli(click.Group):
    """A group that turns the library's UserError into one line and exit code 2, Ctrl-C into 130
    (SIGTERM 143), and any other error into one line naming the log that holds its traceback (1)."""

    def add_command(self, cmd, name=None):
        cmd.params.extend(global_options())
        super().add_command(cmd, name)

    def invoke(self, ctx):
        if sys.stdin is None:  # started with standard input closed (`<&-`): it reads as empty
            sys.stdin = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        try:
            with stop_signals():  # SIGTERM stops every command as Ctrl-C does: its temporary files go with it
                return super().invoke(ctx)
        except UserError as err:
            error = click.ClickException("\n".join(err.lines()))
            error.exit_code = 2
            raise error from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            exit_stopped()
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click's own; a closed pipe (`rnn inspect | head`) click ends quietly
        except Exception as err:  # noqa: BLE001 - the last net: one line, the traceback kept
            if os.environ.get(DEBUG):
                raise
            raise click.ClickException(internal_error(err)) from None


RUN_OR_GROUP = ("Run folder, or a seed group's (rnn train --seeds): the mean of its runs' probabilities "
                "(default: the newest run under runs/).")


def load_backend_of(run_dir: Path) -> None:
    """Before anything imports Keras: the backend the run in `run_dir` was trained with, and the
    backend's native start-up lines sent to a log."""
    from rnn_cli.loading import use_backend_of

    divert_native_logs()
    use_backend_of(run_dir)


def model_run(run_dir: Path | None) -> Path:
    """The run to score text with (default: the newest with a model), its backend chosen before Keras loads."""
    from rnn_cli import runs

    run_dir = run_dir or runs.newest_run(needs=runs.MODEL)
    load_backend_of(run_dir)
    return run_dir


def internal_error(err: Exception) -> str:
    """One line for an error that is the tool's, not the user's; its traceback goes to a log."""
    text = "".join(traceback.format_exception(err))
    reason = (str(err).strip().splitlines() or [""])[0][:200]
    try:
        log = log_dir() / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(text, encoding="utf-8")
        where = f"the traceback is in {log}"
    except OSError:
        where = "the traceback could not be written to a log"
    return f"internal error: {type(err).__name__}: {reason} ({where}; `rnn --debug ...` shows it here)"


def flag_to_environment(name: str):
    """A click callback: the flag, when given, as an environment variable seed processes inherit."""
    def callback(ctx, param, value):
        if value:
            os.environ[name] = "1"
    return callback


def global_options() -> list[click.Option]:
    """--debug and --verbose, which `rnn` and each of its commands take (`rnn --debug train`, `rnn train --debug`)."""
    return [
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=flag_to_environment(DEBUG),
                     help="Show the traceback of an internal error."),
        click.Option(["--verbose"], is_flag=True, expose_value=False, callback=flag_to_environment(VERBOSE),
                     help="Keep TensorFlow's own log lines on the terminal (else they go to a log in the cache "
                          "folder)."),
    ]


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]}, params=global_options())
@click.version_option(__version__, prog_name="rnn")
def main():
    """Train, evaluate, export and serve recurrent text classifiers, on IMDB reviews or your own texts."""


def check_model_name(name: str | None) -> str | None:
    """A model name fit for a URL path segment, as TensorFlow Serving's --model_name."""
    import re

    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise click.BadParameter(f"{name!r}: letters, digits, '_', '.' and '-' only", param_hint="--name")
    return name


def png(ctx, param, path: Path | None) -> Path | None:
    """A click callback for a figure's --out: a .png path (figures are PNGs; one never takes a model's or a
    history's name)."""
    if path is not None and path.suffix.lower() != ".png":
        raise click.BadParameter(f"{path}: figures are written as PNG; give a path ending .png", param_hint="--out")
    return path


def data_overrides(data: Path | None, limit: int | None) -> list[str]:
    """The `--data` and `--limit` options as config overrides (rnn_cli.data.data_overrides)."""
    from rnn_cli.data import data_overrides as overrides

    return overrides(data, limit)


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="YAML config, e.g. configs/simple_rnn.yaml (not with --resume).")
@click.option("--data", type=EXISTING_PATH,
              help="The data: an aclImdb folder or .tar.gz, a .csv, .tsv or .jsonl file of texts and labels, or a "
                   "folder of train/<class>/*.txt and test/<class>/*.txt (sets data.source by its kind).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs.")
@click.option("--limit", type=click.IntRange(min=4), help="Keep N train and N test reviews, class-balanced.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any config value, e.g. --set train.batch_size=64 (repeatable).")
@click.option("--run", "--run-dir", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (default runs/<config name>-<timestamp>), as the other commands' --run; "
                   "--run-dir is its older name.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="auto takes a GPU when one is visible.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --run (default: the newest) from its last finished epoch; "
                   "a seed group's folder continues the whole group.")
@click.option("--seeds", type=click.IntRange(min=1),
              help="Train N runs with seeds train.seed, +1, ...: one folder each, in one group folder.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final result.")
def train(config_path, data, epochs, limit, sets, run_dir, device, resume, seeds, quiet):
    """Train a model; every finished epoch is saved in the run folder.

    \b
    rnn train --config configs/simple_rnn.yaml --data aclImdb_v1.tar.gz
    rnn train --config configs/lstm.yaml --epochs 3 --set train.batch_size=64
    rnn train --config configs/lstm.yaml --seeds 3     # mean and spread over 3 seeds
    rnn train --resume --run runs/lstm-20260101-120000
    """
    from rnn_cli import launch

    epochs_override = [f"train.epochs={epochs}"] if epochs else []
    if resume:
        if config_path or data or limit or sets or seeds:
            raise click.UsageError("--resume continues a run with its own config; only --epochs "
                                   "may change (drop --config, --data, --limit, --set, --seeds)")
        plan = launch.resumed_launch(run_dir, epochs_override)
    elif config_path is None:
        raise click.UsageError("missing --config PATH (e.g. --config configs/simple_rnn.yaml)")
    else:
        config = load_config(config_path, [*sets, *data_overrides(data, limit), *epochs_override])
        plan = launch.new_launch(config, run_dir, seeds)
    try:
        results = launch.train_launch(plan, device, echo=(lambda line: None) if quiet else click.echo,
                                      progress=False if quiet else None)
    except KeyboardInterrupt:
        click.echo(launch.interrupted_message(plan), err=True)
        exit_stopped()
    for line in launch.result_lines(plan, results):
        click.echo(line)


@main.command(name="eval")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help=RUN_OR_GROUP)
@click.option("--model", "model_file", type=EXISTING_PATH, help="A .keras model file instead of a run.")
@click.option("--data", type=EXISTING_PATH, help="Data to test on, of the kinds rnn train --data takes.")
@click.option("--limit", type=click.IntRange(min=4), help="Score N test reviews, class-balanced.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(run_dir, model_file, data, limit, as_json):
    """Score a trained model on the test set; write eval.json and its figures.

    Prints loss, accuracy, precision, recall, F1 (per class and averaged for more than two), ROC AUC,
    the calibration error and the confusion matrix; confusion.png, roc_pr.png and reliability.png
    go beside the model.
    """
    from rnn_cli import runs

    if run_dir and model_file:
        raise click.UsageError("give --run or --model, not both")
    if not model_file:
        run_dir = run_dir or runs.newest_run(needs=runs.MODEL)
    load_backend_of(run_dir or model_file.parent)
    from rnn_cli.evaluate import evaluate_run, metrics_table, save_evaluation

    result = evaluate_run(run_dir, model_file, data_overrides(data, limit))
    click.echo(json.dumps(result.metrics, indent=2) if as_json else metrics_table(result.metrics))
    try:  # the metrics are printed first: a folder that cannot be written loses nothing
        written = save_evaluation(result)
    except UserError as err:
        click.echo(f"warning: not saved: {err}", err=True)
    else:
        if not as_json:
            click.echo(f"written: {', '.join(map(str, written))}")


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help=RUN_OR_GROUP)
@click.option("--file", "text_file", type=click.File("rb"),
              help="Reviews to score, one per line, UTF-8 ('-' reads standard input).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per review.")
def predict(texts, run_dir, text_file, as_json):
    """Score reviews: probability of positive and a label for each.

    \b
    rnn predict "A wonderful, moving film." "Dull and far too long."
    rnn predict --file reviews.txt --json
    """
    from rnn_cli.corpus import review_lines

    if bool(texts) == bool(text_file):
        raise click.UsageError("give review TEXT arguments or --file FILE (one review per line)")
    reviews = list(texts) if texts else review_lines(text_file.read(), getattr(text_file, "name", "<stdin>"))
    run_dir = model_run(run_dir)
    from rnn_cli.predict import predict_texts, result_line
    for result in predict_texts(run_dir, reviews):
        click.echo(json.dumps(result, ensure_ascii=False) if as_json else result_line(result))


@main.command()
@click.option("--run", "run_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Run folder or seed group (repeatable; default: the newest run).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), callback=png,
              help="PNG to write (default: curves.png in the run folder; runs/compare.png for several).")
def plot(run_dirs, out):
    """Draw learning curves (loss and accuracy, training and validation) as a PNG.

    \b
    rnn plot                                   # the newest run: runs/<run>/curves.png
    rnn plot --run runs/a --run runs/b         # both on one figure: runs/compare.png
    """
    from rnn_cli.plots import plot_runs

    click.echo(f"written: {plot_runs(list(run_dirs), out)}")


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--markdown", "as_markdown", is_flag=True, help="Print a Markdown table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows.")
def compare(run_dirs, as_markdown, as_json):
    """Compare runs in one table; a seed group is one row with mean ± std.

    Runs that share a config name get a settings column: the keys they differ in, as --set takes
    them (data.validation_by=movie).

    \b
    rnn compare                               # every run and seed group under runs/
    rnn compare runs/lstm-20261122-101500 runs/simple_rnn-20261122-093000 --markdown
    """
    from rnn_cli.compare import compare as compare_runs
    from rnn_cli.compare import json_text, markdown_table, text_table

    if as_markdown and as_json:
        raise click.UsageError("give --markdown or --json, not both")
    rows = compare_runs(list(run_dirs))
    click.echo(json_text(rows) if as_json else markdown_table(rows) if as_markdown else text_table(rows))


@main.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help=RUN_OR_GROUP)
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many of the words that moved the score most to list.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), callback=png,
              help="PNG of the score over the review (default: explain.png in the run folder).")
@click.option("--class", "traced", metavar="NAME",
              help="Trace this class's probability (default: positive of two, the model's class of more).")
@click.option("--json", "as_json", is_flag=True, help="Print the words and scores as JSON.")
def explain(text, run_dir, top, out, traced, as_json):
    """Show how a review's score moves word by word, and which words moved it most.

    The scores come from rnn_cli/reference.py, the model's layers written as NumPy loops.

    \b
    rnn explain "The plot was thin but the acting was wonderful."
    """
    from rnn_cli import runs

    run_dir = model_run(run_dir)
    from rnn_cli.explain import explain_review, explanation_lines
    from rnn_cli.plots import plot_explanation

    explanation = explain_review(run_dir, " ".join(text), traced)
    figure = plot_explanation(explanation, out or run_dir / runs.EXPLAIN, top)
    if as_json:
        click.echo(json.dumps({**explanation.as_dict(top), "figure": str(figure)}, ensure_ascii=False))
        return
    for line in explanation_lines(explanation, top):
        click.echo(line)
    click.echo(f"written: {figure}")


@main.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Run folder (default: the newest under runs/).")
def inspect(run_dir):
    """Print each layer's weights, parameter count and update equation.

    The equations are the ones rnn_cli/reference.py runs in NumPy (and checks against Keras).
    """
    run_dir = model_run(run_dir)
    from rnn_cli.explain import describe_layers

    for line in describe_layers(run_dir):
        click.echo(line)


@main.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help=RUN_OR_GROUP)
@click.option("--format", "fmt", type=click.Choice(["saved_model", "onnx", "litert"]), default="saved_model",
              show_default=True, help="saved_model takes raw text; onnx and litert take token ids (vocab.json beside).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder to write (default: RUN/export/FORMAT): a new one, or an earlier export, which it "
                   "replaces (a SavedModel gets its next version folder).")
@click.option("--force", is_flag=True, help="Replace --out even if it holds other files (never a run's folder).")
def export(run_dir, fmt, out, force):
    """Export a trained model for use without rnn-cli, loaded back and checked before it is kept.

    \b
    rnn export                         # RUN/export/saved_model/1/: TensorFlow Serving's layout
    rnn export --format onnx --out model-onnx
    """
    from rnn_cli import backends, runs
    from rnn_cli.publish import check_destination, destination

    run_dir = run_dir or runs.newest_run(needs=runs.MODEL)
    check_destination(destination(run_dir, fmt, out), run_dir, force)  # before TensorFlow loads
    divert_native_logs()
    backends.use("tensorflow", needed_by="rnn export")  # SavedModel and ONNX are written by TensorFlow
    from rnn_cli.export import export_run

    path = export_run(run_dir, fmt, out, echo=click.echo, force=force)
    click.echo(f"written: {path} (loaded back: it gives the trained model's probabilities)")


@main.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help=RUN_OR_GROUP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 opens it to other machines.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port.")
@click.option("--name", metavar="NAME", callback=lambda ctx, param, value: check_model_name(value),
              help="The model's name in the URLs, /v1/models/NAME:predict (default: the run's config name).")
@click.option("--no-batching", is_flag=True, help="Score each request alone, never joined with others (for measuring).")
def serve(run_dir, host, port, name, no_batching):
    """Serve a trained model over HTTP: TensorFlow Serving's predict API, explain, and a web page.

    \b
    POST /v1/models/NAME:predict   {"instances": ["text", ...]} -> {"predictions": [...]}
    POST /v1/explain               {"text": "..."} -> the word-by-word trace of rnn explain
    GET  /                         a page to type a review into and see each word's effect
    GET  /healthz

    When it is ready it prints a curl command that scores a review.
    """
    require_extra("serve", "starlette", "uvicorn")
    run_dir = model_run(run_dir)
    from rnn_cli.serve import serve as serve_run

    try:
        serve_run(run_dir, host, port, batching=not no_batching, name=name, echo=click.echo,
                  warn=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        exit_stopped()


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="The base config (a new study).")
@click.option("--space", "space_path", type=click.Path(path_type=Path),
              help="YAML of config keys to search, e.g. train.learning_rate: {log_uniform: [1e-4, 1e-2]}.")
@click.option("--trials", type=click.IntRange(min=1), help="Finished trials the study should have, every worker "
              "counting [default: 20].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="MIN",
              help="Start no trial after MIN minutes (one under way finishes).")
@click.option("--storage", metavar="URL", help="postgresql://USER:PASSWORD@HOST:PORT/DB, for workers on several "
              "machines; default: a journal file in the study folder.")
@click.option("--study", "study_name", metavar="NAME", help="The study's name (default <config name>-tune-<time>); "
              "an existing one continues.")
@click.option("--seeds", type=click.IntRange(min=1), help="Score each trial by the mean over K seeds [default: 1].")
@click.option("--data", type=EXISTING_PATH, help="The data, as rnn train --data takes it.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs of every trial.")
@click.option("--limit", type=click.IntRange(min=4), help="Keep N train and N test reviews (quick studies).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a base config value.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--report", is_flag=True, help="Show the study's trials, key importances and figures; train nothing "
              "(default: the newest study under runs/).")
def tune(config_path, space_path, trials, timeout, storage, study_name, seeds, data, epochs, limit, sets, device,
         report):
    """Search config values with Optuna; every trial is a run folder under runs/<study>/.

    \b
    rnn tune --config configs/lstm.yaml --space space.yaml --trials 30 --data aclImdb_v1.tar.gz
    rnn tune --study lstm-tune-20261201-120000            # continue it (another worker, or later)
    rnn tune --report                                     # the newest study
    """
    require_extra("tune", "optuna")
    from rnn_cli.study import base_config, newest_study, open_study
    from rnn_cli.tune import tune as run_study
    from rnn_cli.tune_report import report as study_report

    overrides = [*sets, *data_overrides(data, limit), *([f"train.epochs={epochs}"] if epochs else [])]
    base = base_config(config_path, overrides)
    if report and study_name is None and base is None:
        study_name = newest_study().name
    study = open_study(study_name, base, space_path, storage, seeds)
    if report:
        study_report(study, echo=click.echo)
        return
    try:
        run_study(study, trials, timeout, device, echo=click.echo)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished trials are kept; continue with `rnn tune --study {study.name}"
                   + (" --storage URL`" if study.storage else "`"), err=True)
        exit_stopped()


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="YAML config whose data and split the baseline uses (its model and train sections are not).")
@click.option("--data", type=EXISTING_PATH, help="The data, as rnn train's --data.")
@click.option("--limit", type=click.IntRange(min=4), help="Keep N train and N test reviews, class-balanced.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value (data.* matter).")
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (default runs/<config name>-baseline-<timestamp>).")
def baseline(config_path, data, limit, sets, run_dir):
    """Train the strong linear baseline on exactly the data and split a config names, into a run folder.

    Logistic regression on TF-IDF word unigrams and bigrams (scikit-learn), C chosen on the validation
    split, the test split scored once; `rnn compare` shows it beside the recurrent runs.

    \b
    rnn baseline --config configs/lstm.yaml --data aclImdb_v1.tar.gz
    """
    require_extra("baseline", "sklearn")
    from rnn_cli.baseline import baseline_run

    baseline_run(load_config(config_path, [*sets, *data_overrides(data, limit)]), run_dir, echo=click.echo)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="YAML config.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("--classes", type=click.IntRange(min=2), default=2, show_default=True,
              help="Classes the data has: 2 gives Dense(1, sigmoid), more Dense(N, softmax).")
def summary(config_path, sets, classes):
    """Build the model of a config and print its layers and parameter counts."""
    from rnn_cli.memory import check_model_fits

    config = load_config(config_path, sets)
    check_model_fits(config)  # before TensorFlow loads: a model too big to build is one line
    from rnn_cli import backends

    divert_native_logs()
    backends.use(backends.ready(config.train))
    from rnn_cli.model import build_model, summary_text

    click.echo(summary_text(build_model(config.model, config.data.num_words, classes=classes)), nl=False)


def run() -> None:
    """The `rnn` command (its console script, `python -m rnn_cli.cli`): `main`, the process ending with the
    code of a stop as `main` gave it (`rnn_cli.stopping.end_process`)."""
    skip_probed_imports()
    try:
        main()
    except StopExit as stop:
        end_process(stop.code)


if __name__ == "__main__":
    run()
