"""MODEL_CARD.md: what a trained model is, what it was trained and tested on, and what it is not for.

Written by `rnn train` when a run finishes, refreshed by `rnn eval` (its metrics replace training's),
and copied into every `rnn export`. Everything in it is read from the run folder's own files.
"""

from __future__ import annotations

from pathlib import Path

from rnn_cli import loading, runs
from rnn_cli.config import Config, dump_config, load_config, to_dict
from rnn_cli.files import write_atomic
from rnn_cli.run_rows import data_label

CARD = "MODEL_CARD.md"


def write_card(run_dir: Path, out: Path | None = None) -> Path:
    """The run's model card, written to `out` (default: MODEL_CARD.md in the run folder)."""
    out = out or run_dir / CARD
    write_atomic(out, card_text(run_dir))
    return out


def card_text(run_dir: Path) -> str:
    """The card of a run, or of a seed group (its first run's facts, its own test metrics: the ensemble's)."""
    source = loading.model_source(run_dir)
    group = runs.group_members(run_dir) if source != run_dir else []
    config = load_config(source / runs.CONFIG)
    record = runs.read_mapping(source / runs.RUN_RECORD)
    classes = runs.read_classes(source)
    tested, metrics = test_metrics(run_dir)
    data = record.get("data", {})
    sizes = data.get("sizes", {})
    reading = "the first" if config.data.truncating == "post" else "the last"
    parameters = record.get("parameters")
    counted = f", {parameters:,} parameters" if isinstance(parameters, int) else ""
    what = f"A recurrent text classifier trained with rnn-cli: {architecture(config, len(classes))}{counted}."
    if group:
        seeds = ", ".join(folder.name.removeprefix("seed-") for folder in group)
        what = (f"An ensemble of {len(group)} recurrent text classifiers trained with rnn-cli from one config with "
                f"seeds {seeds} (`rnn train --seeds`), whose output is the mean of their probabilities; each is "
                f"{architecture(config, len(classes))}{counted}. The training facts below are seed "
                f"{group[0].name.removeprefix('seed-')}'s.")
    lines = [f"# Model card: {config.name}" + (f", {len(group)} seeds" if group else ""), "", what,
             "", "## Input and output", "",
             "- Input: text, lower-cased and split into words as `rnn predict` splits it (runs of letters "
             "or digits, inner apostrophes kept, `<br />` and punctuation dropped).",
             f"- It reads at most {config.data.maxlen} tokens: a start token and {reading} "
             f"{config.data.maxlen - 1} words of a longer text. Words outside its "
             f"{sizes.get('vocabulary', config.data.num_words - 3):,}-word vocabulary are read as one "
             "unknown-word token.",
             f"- Output: the probability of each class: {', '.join(classes)}"
             + (f" (one sigmoid output, the probability of {classes[1]}; {classes[1]} at 0.5 or above)."
                if len(classes) == 2 else " (softmax; the label is the likeliest)."),
             "", "## Data", "",
             f"- Source: {data.get('source', config.data.source)}.",
             f"- Reviews: {sizes.get('train', '?')} to train on, {sizes.get('val', '?')} to validate "
             f"(`data.validation_by: {config.data.validation_by}`), {sizes.get('test', '?')} to test"
             + (f"; {sizes['skipped']} files skipped." if sizes.get("skipped") else "."),
             "", "## Training", "",
             f"- {record.get('epochs_done', '?')} epoch(s), best epoch {record.get('best_epoch', '?')} by "
             f"validation accuracy, on {record.get('device', '?')} with Keras on {record.get('backend', 'tensorflow')}; "
             f"started {record.get('started', '?')}, "
             f"finished {record.get('finished', '?')}.",
             f"- Versions: {versions(record)}.",
             "- The config (`rnn train --config` on it repeats the training):", "", "```yaml",
             dump_config(config).rstrip(), "```", "",
             f"## Test metrics ({tested})", ""]
    lines += metric_lines(metrics, classes) if metrics else ["No test metrics yet: run `rnn eval`."]
    lines += ["", "## Intended use and limits", "",
              "- Made for learning and teaching recurrent networks, and as a baseline to beat on the same data; "
              "not for decisions about people.",
              f"- It knows only what its training data holds: {language(config)}, texts like those it was trained "
              "on. On other kinds of text, or other languages, its probabilities mean little.",
              f"- Texts longer than {config.data.maxlen} tokens are cut; an empty text, or one with no word "
              "it knows, gets no score from `rnn predict` and `rnn serve`.",
              "- The probabilities are the model's, calibrated only as well as the expected calibration "
              "error above says."]
    return "\n".join(lines) + "\n"


def baseline_card_text(run_dir: Path) -> str:
    """The card of an `rnn baseline` run: the linear model, its data, its test metrics, and what it is for."""
    config = load_config(run_dir / runs.CONFIG)
    record = runs.read_mapping(run_dir / runs.RUN_RECORD)
    classes = runs.read_classes(run_dir)
    sizes = record.get("data", {}).get("sizes", {})
    return "\n".join([
        f"# Model card: {config.name}", "",
        f"The linear baseline of `rnn baseline` (scikit-learn): {record.get('model', '?')}, "
        f"{record.get('parameters', 0):,} weights, C {record.get('C', '?')} chosen on validation "
        f"(validation accuracy {record.get('val_accuracy', 0):.4f}). It is what a recurrent model trained on the "
        "same data and split has to beat.", "", "## Data", "",
        f"- Source: {record.get('data', {}).get('source', config.data.source)}; the data and split of "
        f"config `{config.name}` (the config below), every word of the training split kept.",
        f"- Reviews: {sizes.get('train', '?')} to train on, {sizes.get('val', '?')} to validate "
        f"(`data.validation_by: {config.data.validation_by}`), {sizes.get('test', '?')} to test.", "",
        "```yaml", dump_config(config).rstrip(), "```", "",
        "## Test metrics (`rnn baseline`, on its test split)", "",
        *metric_lines(runs.read_mapping(run_dir / runs.METRICS), classes), "",
        "## Intended use and limits", "",
        "- A reference point in `rnn compare`'s table, not a model to deploy: the fitted model is not kept (it "
        "trains again in minutes), so `rnn predict`, `eval`, `export` and `serve` do not take this folder.",
        f"- It knows only what its training data holds: {language(config)}."]) + "\n"


def model_facts(trained: loading.Trained) -> dict:
    """What the page shows of a loaded model: config name, layers, parameters, data, and test accuracy when
    scored."""
    run_dir, config = trained.run_dir, trained.config
    record = runs.read_mapping(loading.model_source(run_dir) / runs.RUN_RECORD)
    sizes = record.get("data", {}).get("sizes", {})
    counted = ", ".join(f"{sizes[key]:,} {key}" for key in ("train", "val", "test") if isinstance(sizes.get(key), int))
    tested, metrics = test_metrics(run_dir)
    architecture_text = architecture(config, len(trained.classes))
    parameters = record.get("parameters")
    if trained.members and isinstance(parameters, int):
        architecture_text = f"the mean of {len(trained.members)} seeds' {architecture_text}"
        parameters *= len(trained.members)
    return {"config": config.name, "architecture": architecture_text, "parameters": parameters,
            "data": data_label(to_dict(config)) + (f" ({counted} reviews)" if counted else ""),
            "test_accuracy": (metrics or {}).get("accuracy"), "tested": tested}


def test_metrics(run_dir: Path) -> tuple[str, dict | None]:
    """The newest test metrics: `rnn eval`'s when they are newer than training's."""
    found = [(path.stat().st_mtime, path) for path in (run_dir / runs.METRICS, run_dir / runs.EVAL) if path.exists()]
    if not found:
        return "none yet", None
    path = max(found)[1]
    what = "`rnn eval`" if path.name == runs.EVAL else "`rnn train`, on its test split"
    return f"from {what}", runs.read_mapping(path)


def architecture(config: Config, classes: int) -> str:
    """`Embedding(10000, 32) -> Bidirectional(GRU(32)) -> Dense(1, sigmoid)`."""
    names = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
    layers = [f"{names[layer.type]}({layer.units})" for layer in config.model.layers]
    layers = [f"Bidirectional({text})" if layer.bidirectional else text
              for text, layer in zip(layers, config.model.layers)]
    head = "Dense(1, sigmoid)" if classes == 2 else f"Dense({classes}, softmax)"
    model = config.model
    dropouts = [text.format(getattr(model, name)) for name, text in (("embedding_dropout", "Dropout({}, whole words)"),
                ("spatial_dropout", "SpatialDropout1D({})")) if getattr(model, name)]
    pooling = [f"Pooling({model.pooling})"] if model.pooling != "last" else []
    embedding = f"Embedding({config.data.num_words}, {model.embedding_dim})"
    if model.bigram_buckets:
        embedding += f" + WordPairs({model.bigram_buckets}, {model.embedding_dim})"
    return " -> ".join([embedding, *dropouts, *layers,
                        *pooling, head])


def metric_lines(m: dict, classes: tuple[str, ...]) -> list[str]:
    """The metrics and the confusion matrix as Markdown tables."""
    keys = ["reviews", "loss", "accuracy", "macro_f1", "weighted_f1", "precision", "recall", "f1", "roc_auc",
            "expected_calibration_error"]
    rows = [f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
            for key in keys if (value := m.get(key, "absent")) != "absent"]
    lines = ["| metric | value |", "| --- | --- |", *rows, "", "Confusion matrix (rows: actual, columns: predicted):", ""]
    cm = m.get("confusion_matrix", {})
    matrix = cm.get("matrix") or [[cm.get("true_negative"), cm.get("false_positive")],
                                  [cm.get("false_negative"), cm.get("true_positive")]]
    names = cm.get("classes", classes)
    lines += ["| actual | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    lines += [f"| {name} | " + " | ".join(str(count) for count in row) + " |" for name, row in zip(names, matrix)]
    return lines


def versions(record: dict) -> str:
    found = record.get("versions", {})
    return ", ".join(f"{name} {found[name]}" for name in ("rnn_cli", "tensorflow", "jax", "jaxlib", "torch", "keras", "python") if name in found)


def language(config: Config) -> str:
    if config.data.source in ("keras", "aclimdb"):
        return "English movie reviews from IMDB"
    return f"the texts of {config.data.path}"
