"""The experiment config: one frozen object with `data`, `model` and `train` sections.

A YAML file is a small difference from the defaults below. It is loaded once with
`yaml.safe_load`, checked against these dataclasses (unknown keys, wrong types, out-of-range
values are rejected with the file, the key path and what is allowed) and never mutated after.
The checks are hand-made rather than pydantic's: its messages (e.g. "Tuple should have at least 1
item after validation") would need a rewriting layer to stay one line that names the key and what is
allowed, for a saving of about a hundred lines and a new core dependency.

Longer than most modules, on purpose: every key a user can write is here, its default, a comment on
what it means and its check, one section's dataclass after another, with the one parser they share.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from rnn_cli.errors import ConfigError, UserError
from rnn_cli.parsing import excerpt, is_finite, load_yaml

LAYER_TYPES = ("simple_rnn", "lstm", "gru")
MAX_INT = 2**31 - 1  # the largest integer a config takes (sizes and counts are int32 in TensorFlow)
TABLES = ("csv", "tsv", "jsonl")  # sources read as rows of a text and a label
# One path component: no separator, no control character, not hidden, not . or ..
SAFE_NAME = re.compile(r"[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*")


@dataclass(frozen=True)
class DataConfig:
    # keras: Keras' imdb.npz download; aclimdb: the official folder or .tar.gz; csv, tsv, jsonl: a
    # file of labelled texts; folder: train/<class>/*.txt and test/<class>/*.txt (see data.py and own_files.py).
    source: Literal["keras", "aclimdb", "csv", "tsv", "jsonl", "folder"] = "keras"
    path: str | None = None  # the data for every source but keras (--data PATH)
    test_path: str | None = None  # csv, tsv, jsonl: a file of test rows; null: hold out test_split
    test_split: float = 0.2  # without test_path: share of the rows held out as the test set, by class
    text_column: str = "text"  # csv, tsv: a header's column; jsonl: a key
    label_column: str = "label"  # labels may be strings or integers
    positive_label: str | None = None  # two classes: the one called positive; null: the second, sorted
    # The class names in the order the model, its metrics and figures use them (ordinal labels keep theirs:
    # [awful, poor, good, great]); every label of the data, no other; null: sorted (as numbers if all are)
    classes: tuple[str, ...] | None = None
    # csv, tsv, jsonl: a column (a product, an author) whose rows all go to one side of the validation
    # split, as validation_by: movie does for aclImdb; null: any rows
    group_column: str | None = None
    num_words: int = 10000  # vocabulary cap, reserved indices 0-2 included (as Keras counts)
    maxlen: int = 500  # tokens kept per review
    # Batches of reviews of similar length, each padded only to its bucket (a multiple of
    # bucket_width) and the padding masked: about half the recurrent steps of padding all to
    # maxlen, same results. Off: the book's recipe, everything padded to maxlen, no mask.
    bucketing: bool = True
    # Few fixed lengths, so XLA compiles each batch shape once and keeps few (docs/performance.md). null: 128,
    # or half the longest review or maxlen (the shorter) where every recurrent loop of training skips the padding
    # past a batch's longest review (LSTM and GRU on TensorFlow, off cuDNN), whose wider buckets cost little.
    bucket_width: int | None = None
    padding: Literal["pre", "post"] = "pre"  # bucketing off only (on: right-padded, as cuDNN needs)
    truncating: Literal["pre", "post"] = "pre"  # pre keeps a long review's ending
    validation_split: float = 0.2  # share of the training reviews held out, seeded shuffle
    # review: any reviews (the common practice); movie: whole movies, so validation reviews are of
    # movies the model has not seen, as the test set's are (source aclimdb, see data.py).
    validation_by: Literal["review", "movie"] = "review"
    limit: int | None = None  # keep N train and N test reviews, class-balanced (smoke runs)
    seed: int = 1337  # validation split and --limit sampling

    def check(self, where: str) -> None:
        _require(self.num_words >= 4, f"{where}.num_words", self.num_words, "an integer >= 4")
        _require(self.maxlen >= 1, f"{where}.maxlen", self.maxlen, "an integer >= 1")
        _require(self.bucket_width is None or self.bucket_width >= 1, f"{where}.bucket_width", self.bucket_width,
                 "an integer >= 1 or null")
        _require(
            0.0 < self.validation_split < 1.0,
            f"{where}.validation_split", self.validation_split, "a number between 0 and 1 (exclusive)",
        )
        _require_with(
            self.validation_by != "movie" or self.source == "aclimdb", f"{where}.validation_by",
            f"movie needs {where}.source aclimdb (--data PATH): Keras' imdb.npz is shuffled, so which "
            f"reviews share a movie is lost; use review with source keras",
        )
        _require(self.limit is None or self.limit >= 4, f"{where}.limit", self.limit, "an integer >= 4")
        _require(self.seed >= 0, f"{where}.seed", self.seed, "an integer >= 0")  # NumPy's generators refuse others
        _require_with(
            self.source == "keras" or self.path is not None, f"{where}.path",
            f"required when {where}.source is {self.source}: the data's file or folder (--data PATH)",
        )
        _require_with(
            self.test_path is None or self.source in TABLES, f"{where}.test_path",
            f"only for {where}.source csv, tsv or jsonl (a folder has test/, aclImdb and Keras their test split)",
        )
        _require(0.0 < self.test_split < 1.0, f"{where}.test_split", self.test_split,
                 "a number between 0 and 1 (exclusive)")
        _require_with(self.group_column is None or self.source in TABLES, f"{where}.group_column",
                      f"only for {where}.source csv, tsv or jsonl (aclImdb: validation_by movie)")
        if self.classes is not None:
            _require_with(self.source in (*TABLES, "folder"), f"{where}.classes",
                          f"only for your own data ({where}.source csv, tsv, jsonl or folder); IMDB's are neg, pos")
            _require(len(self.classes) >= 2 and len(set(self.classes)) == len(self.classes), f"{where}.classes",
                     list(self.classes), "two or more different class names, in the order to use")
            _require_with(self.positive_label is None, f"{where}.positive_label",
                          f"not with {where}.classes, whose last of two is the positive one")


@dataclass(frozen=True)
class LayerConfig:
    type: Literal["simple_rnn", "lstm", "gru"]
    units: int = 32
    bidirectional: bool = False
    dropout: float = 0.0  # on the layer's inputs
    recurrent_dropout: float = 0.0  # on the state; disables cuDNN on GPU

    def check(self, where: str) -> None:
        _require(self.units >= 1, f"{where}.units", self.units, "an integer >= 1")
        for name in ("dropout", "recurrent_dropout"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"{where}.{name}", value, "a number in [0, 1)")


def layer_name(layer: LayerConfig, i: int) -> str:
    """The name of the model's `i`-th recurrent layer, as Keras, run.json and rnn inspect show it."""
    return f"{layer.type}_{i}"


# The largest vocabulary with word pairs (rnn_cli/pairs.py): num_words ** 2 < 2 ** 31.
PAIR_WORDS = 46340


@dataclass(frozen=True)
class ModelConfig:
    embedding_dim: int = 32
    # Drop whole words (a review's token vectors, each with this probability, while training: Miyato et
    # al. 2016) and whole embedding channels (the same channels for every word of a review); 0: off.
    embedding_dropout: float = 0.0
    spatial_dropout: float = 0.0
    # Every layer but the last returns sequences: the builder sets that, never the user.
    layers: tuple[LayerConfig, ...] = (LayerConfig(type="simple_rnn"),)
    # What the head reads: the last layer's final state (the book's), or its outputs over the whole
    # review pooled, padding left out (rnn_cli/pooling.py).
    pooling: Literal["last", "max", "mean", "max_mean", "attention"] = "last"
    # Word vectors to start the embedding from, for the words they cover (GloVe, word2vec or fastText
    # text format, .gz too; rnn_cli/vectors.py); null: random, as the book's. Their dimension must be
    # embedding_dim. embedding_trainable false keeps the embedding as it starts.
    embedding_file: str | None = None
    embedding_trainable: bool = True
    # Word pairs: a vector for each pair of adjacent words, hashed into this many rows, added to the
    # second word's vector (rnn_cli/pairs.py, as fastText's word n-grams); 0: words only, as the book's.
    bigram_buckets: int = 0

    def check(self, where: str) -> None:
        _require(self.embedding_dim >= 1, f"{where}.embedding_dim", self.embedding_dim, "an integer >= 1")
        for name in ("embedding_dropout", "spatial_dropout"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"{where}.{name}", value, "a number in [0, 1)")
        _require(len(self.layers) >= 1, f"{where}.layers", [], "a list of at least one layer")
        _require(self.bigram_buckets >= 0, f"{where}.bigram_buckets", self.bigram_buckets,
                 "an integer >= 0 (0: no word pairs; a prime such as 100003 spreads them best)")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int | None = None  # epochs without a better val_accuracy before stopping; null: off
    restore_best: bool = True  # model.keras and the test metrics use the best epoch

    def check(self, where: str) -> None:
        _require(self.patience is None or self.patience >= 1, f"{where}.patience", self.patience,
                 "an integer >= 1, or null to turn early stopping off")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "rmsprop"
    learning_rate: float = 0.001
    # constant: learning_rate throughout. cosine: from learning_rate down to 0 along a half cosine
    # over all the steps of train.epochs (smaller steps late, where validation accuracy swings).
    schedule: Literal["constant", "cosine"] = "constant"
    # Keep an exponential moving average of the weights, updated every step (Keras' use_ema):
    # validation, the best epoch and the saved model use the average, training goes on from the
    # weights themselves. 0.99 averages over about the last 100 steps; null: off.
    ema_momentum: float | None = None
    # Scale the gradients down to this global norm when larger (Keras' global_clipnorm; recurrent nets'
    # exploding gradients, Pascanu et al. 2013); null: off.
    clipnorm: float | None = None
    # Decoupled weight decay, which every optimizer takes; null: the optimizer's own default (adamw 0.004,
    # the others none).
    weight_decay: float | None = None
    batch_size: int = 32
    epochs: int = 10
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    seed: int = 42  # weight initialisation and batch order
    # The Keras backend: tensorflow, jax or torch (their extras); null: KERAS_BACKEND, else tensorflow.
    backend: Literal["tensorflow", "jax", "torch"] | None = None
    # XLA-compiles the train step: much faster small-RNN steps on CPU, where Keras leaves it off.
    # On GPU Keras turns it off itself for LSTM/GRU layers that run on cuDNN. null: on with
    # TensorFlow and JAX, off with PyTorch, which has no XLA (rnn_cli/backends.py).
    jit_compile: bool | None = None
    # Batches Keras runs in one call of its compiled loop: Python and the runtime are paid once for them
    # (callbacks, the progress bar and a Ctrl-C see every N-th batch's end); the same steps, the same
    # history. null: 2 on TensorFlow, 1 on JAX and PyTorch, whose Keras loops over them in Python anyway.
    steps_per_execution: int | None = None
    deterministic: bool = True  # CPU: same seed, same history (XLA, else the backend's own switch); GPU: ignored
    # Keras' dtype policy: mixed_float16 computes in 16 bits with float32 weights and loss scaling
    # (GPUs; also the cuDNN kernels), mixed_bfloat16 needs no loss scaling. The head stays float32.
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    # Per-epoch scalars for TensorBoard in RUN/tensorboard/ (and, for rnn tune's trials, the HParams
    # dashboard's records): `tensorboard --logdir runs/`. Needs the tensorboard extra.
    tensorboard: bool = False

    def check(self, where: str) -> None:
        _require(self.learning_rate > 0, f"{where}.learning_rate", self.learning_rate, "a number > 0")
        _require(self.ema_momentum is None or 0 < self.ema_momentum < 1, f"{where}.ema_momentum",
                 self.ema_momentum, "a number between 0 and 1 (e.g. 0.99), or null to turn averaging off")
        _require(self.clipnorm is None or self.clipnorm > 0, f"{where}.clipnorm", self.clipnorm,
                 "a number > 0 (e.g. 1.0), or null for no clipping")
        _require(self.weight_decay is None or self.weight_decay >= 0, f"{where}.weight_decay", self.weight_decay,
                 "a number >= 0 (e.g. 0.004), or null for the optimizer's default")
        _require(self.batch_size >= 1, f"{where}.batch_size", self.batch_size, "an integer >= 1")
        _require(self.epochs >= 1, f"{where}.epochs", self.epochs, "an integer >= 1")
        _require(self.steps_per_execution is None or self.steps_per_execution >= 1, f"{where}.steps_per_execution",
                 self.steps_per_execution, "an integer >= 1, or null for the backend's default")
        _require(self.seed >= 0, f"{where}.seed", self.seed, "an integer >= 0")
        # Keras' loss-scale wrapper hides the average from the callback that validates it.
        _require_with(self.ema_momentum is None or self.precision != "mixed_float16", f"{where}.ema_momentum",
                      f"{self.ema_momentum} cannot be combined with {where}.precision mixed_float16; use "
                      "mixed_bfloat16 to average, or ema_momentum null")


@dataclass(frozen=True)
class Config:
    name: str = "run"  # names the run folder; defaults to the config file's stem
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    def check(self, where: str = "") -> None:
        _require_with(not self.model.bigram_buckets or self.data.num_words <= PAIR_WORDS, "model.bigram_buckets",
                      f"word pairs need data.num_words <= {PAIR_WORDS:,} (a pair's key, previous * words + this, "
                      f"is a 32-bit integer), not {self.data.num_words:,}")
        # The name becomes the run folder's: one path component, nothing that climbs out of runs/.
        _require_with(bool(SAFE_NAME.fullmatch(self.name)), "name",
                      f"{excerpt(self.name)} cannot name a run folder; use one folder name: no / or \\, not "
                      f"starting with a dot")


def load_config(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Read a YAML config, apply `KEY=VALUE` overrides and check everything.

    Args:
        path: the YAML file.
        overrides: dotted `section.key=value` strings; values are parsed as YAML scalars.

    Returns:
        The frozen, checked Config.

    Raises:
        ConfigError: one line naming the file, the key and what is allowed.
    """
    path = Path(path)
    raw = read_yaml(path)
    raw.setdefault("name", path.stem)
    return config_from_dict(raw, overrides, source=str(path))


def read_yaml(path: Path) -> dict:
    """The YAML mapping in `path`, or a ConfigError naming the file (and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config file ({err})") from None
    try:
        raw = load_yaml(text, str(path))
    except UserError as err:  # nested too deeply, or too large once expanded
        raise ConfigError(str(err)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config is a mapping with sections data, model, train; "
                          f"got {type(raw).__name__}")
    return raw


def config_from_dict(raw: dict, overrides=(), source: str = "config") -> Config:
    """Build and check a Config from a plain mapping plus `KEY=VALUE` overrides; every bad key is named, each
    by where its value came from: the file (`source`) or `--set KEY=VALUE`."""
    # Overrides see the defaults too, so `--set model.layers.0.units=64` works on any file.
    raw = _merged(to_dict(Config()), raw)
    overridden = {}
    for item in overrides:
        apply_override(raw, item)
        overridden[item.partition("=")[0].strip()] = item
    bucket = _COLLECTED.set([])  # each section's range checks run as it is built (`_build`)
    try:
        config = _build(Config, raw, "")
        found = _COLLECTED.get()
    except _Invalid as err:
        found = _COLLECTED.get() + err.found
    finally:
        _COLLECTED.reset(bucket)
    if not found:
        return config
    found.sort(key=lambda pair: _key_order(pair[0]))
    lines = [_origin(where, message, source, overridden) for where, message in found]
    if len(lines) == 1:
        raise ConfigError(lines[0])
    raise ConfigError(f"{source}: {len(lines)} problems", tuple(lines))


def _origin(where: str, message: str, source: str, overridden: dict[str, str]) -> str:
    """`message` about the key `where`, headed by what set it: a `--set KEY=VALUE`, else the file."""
    dotted = re.sub(r"\[(\d+)\]", r".\1", where)
    for key, item in overridden.items():
        if dotted == key or dotted.startswith(key + "."):
            own = message.removeprefix(f"{where}: ") if dotted == key else message
            return f"--set {item}: {own}"
    return f"{source}: {message}"


def apply_override(raw: dict, item: str) -> None:
    """Set a dotted key (`train.epochs=3`, `model.layers.0.units=64`) in a raw mapping."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {excerpt(item)}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        value = load_yaml(text, f"--set {key.strip()}") if text.strip() else None
    except UserError as err:
        raise ConfigError(str(err)) from None
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        child = _child(node, part)
        if child is None:
            child = {}
            _set_child(node, part, child, parts[: depth + 1])
        elif isinstance(child, (dict, list)):
            # Copy on the way down so the caller's mapping is never changed.
            child = dict(child) if isinstance(child, dict) else list(child)
            _set_child(node, part, child, parts[: depth + 1])
        else:
            raise ConfigError(f"--set {key}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    _set_child(node, parts[-1], value, parts)


def to_dict(config: Config) -> dict:
    """The config as plain data, ready for `yaml.safe_dump` (tuples become lists)."""
    return _plain(dataclasses.asdict(config))


def flat_settings(raw: dict) -> dict[str, Any]:
    """A config mapping, defaults filled in, as the dotted keys `--set` takes.

    Example: {"model.layers.0.units": 32, "train.epochs": 10, ...}; nothing is checked, so a run
    folder written by an older version reads too.
    """
    flat = {}

    def walk(node, prefix):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, (dict, list)) and value:
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    raw = _merged(to_dict(Config()), raw)
    layers = raw["model"].get("layers") if isinstance(raw.get("model"), dict) else None
    if isinstance(layers, list):
        layer_defaults = to_dict(LayerConfig(type="simple_rnn"))
        raw["model"] = {**raw["model"], "layers": [_merged(layer_defaults, layer) if isinstance(layer, dict)
                                                   else layer for layer in layers]}
    walk(raw, "")
    return flat


def dump_config(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def _merged(base: dict, top: dict) -> dict:
    """`top` laid over `base`, mapping by mapping; lists and scalars in `top` replace."""
    merged = dict(base)
    for key, value in top.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both else value
    return merged


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _child(node, part: str):
    if isinstance(node, list):
        return node[int(part)] if part.isdigit() and int(part) < len(node) else None
    return node.get(part)


def _set_child(node, part: str, value, parts: list[str]) -> None:
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise ConfigError(f"--set {'.'.join(parts)}: index {part} is outside the list "
                              f"of {len(node)} item(s)")
        node[int(part)] = value
    else:
        node[part] = value


class _Invalid(ConfigError):
    """Keys that do not check out, as (key path, message) pairs; `config_from_dict` words them."""

    def __init__(self, found: list[tuple[str, str]]):
        super().__init__(found[0][1])
        self.found = found


def _invalid(where: str, message: str) -> _Invalid:
    return _Invalid([(where, message)])


def _build(cls, raw, where: str):
    """Instantiate dataclass `cls` from mapping `raw`, checking keys and types; every bad key is reported."""
    label = where or "config"
    if not isinstance(raw, dict):
        raise _invalid(label, f"{label}: expected a mapping of keys, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    found = []
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(names)}"
            found.append((_join(where, key), f"unknown key '{_join(where, key)}'{hint}"))
    found += [(_join(where, f.name), f"'{_join(where, f.name)}' is required") for f in dataclasses.fields(cls)
              if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in raw]
    values = {}
    for key, value in raw.items():
        if key in names:
            try:
                values[key] = _convert(hints[key], value, _join(where, key))
            except _Invalid as err:
                found += err.found
    try:  # a bad key's default stands in for it, so that the section's other keys are checked too
        built = cls(**values)
    except TypeError:  # a required key is missing
        built = None
    if built is not None:
        built.check(where)  # the ranges and the rules across keys, section by section
    if found:
        raise _Invalid(found)
    return built


def _key_order(where: str) -> list:
    """A key path's place in the config: sections as `Config` lists them, list items by number."""
    order = [f.name for f in dataclasses.fields(Config)]
    parts = re.sub(r"\[(\d+)\]", r".\1", where).split(".")
    return [(0, order.index(part)) if i == 0 and part in order else (1, int(part)) if part.isdigit() else (2, part)
            for i, part in enumerate(parts)]


def _convert(hint, value, where: str):
    """Check `value` against type `hint` and return it in the dataclass' own form."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        try:
            return _convert(inner, value, where)
        except _Invalid as err:  # "expected a number, got ..." -> "expected a number or null, got ..."
            raise _Invalid([(key, text.replace(", got ", " or null, got ", 1)) for key, text in err.found]) from None
    if origin is Literal:
        if value not in args:
            if where.endswith(".type"):
                raise _invalid(where, f"{where}: unknown layer type {excerpt(value)}; allowed: {', '.join(args)}")
            raise _invalid(where, f"{where}: {excerpt(value)} is not allowed; allowed: {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise _invalid(where, f"{where}: expected a list, got {_describe(value)}")
        items, found = [], []
        for i, item in enumerate(value):
            try:
                items.append(_convert(args[0], item, f"{where}[{i}]"))
            except _Invalid as err:
                found += err.found
        if found:
            raise _Invalid(found)
        return tuple(items)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise _invalid(where, f"{where}: expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(where, f"{where}: expected an integer, got {_describe(value)}")
        if not -MAX_INT <= value <= MAX_INT:  # NumPy, TensorFlow and the seeds' generators take 32 bits
            raise _invalid(where, f"{where}: {excerpt(value)} is out of range; expected an integer of at most "
                                  f"{MAX_INT:,}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(where, f"{where}: expected a number, got {_describe(value)}")
        if not is_finite(value):
            raise _invalid(where, f"{where}: {excerpt(value)} is out of range; expected a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _invalid(where, f"{where}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {where}")


# While `config_from_dict` checks a config, the range checks' findings, so that all of them are reported.
_COLLECTED: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar("collected", default=None)


def _require(ok: bool, where: str, value, allowed: str) -> None:
    if not ok:
        _fail(where, f"{where}: {excerpt(value)} is out of range; expected {allowed}")


def _require_with(ok: bool, where: str, rule: str) -> None:
    """A rule across two keys: the message says which other key and value rule this one out."""
    if not ok:
        _fail(where, f"{where}: {rule}")


def _fail(where: str, message: str) -> None:
    found = _COLLECTED.get()
    if found is None:
        raise _invalid(where, message)
    found.append((where, message))


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def _describe(value) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {excerpt(value)}"
