import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnn_cli.cli import main
from rnn_cli.config import Config, LayerConfig, dump_config, load_config
from rnn_cli.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_config_loads_and_builds():
    from rnn_cli.model import build_model

    shipped = sorted(CONFIGS.glob("*.yaml"))
    assert [p.stem for p in shipped] == ["best", "lstm", "simple_rnn", "stacked_simple_rnn", "tuned"]
    for path in shipped:
        config = load_config(path)
        assert config.name == path.stem
        build_model(config.model, config.data.num_words)
    best = load_config(CONFIGS / "best.yaml")
    assert best.model.layers[0].bidirectional and best.train.schedule == "cosine"
    from rnn_cli.model import parameters_before_head

    tuned = load_config(CONFIGS / "tuned.yaml")  # best.yaml, tuned: the README's figure
    assert parameters_before_head(build_model(tuned.model, tuned.data.num_words)) == 652_960


@pytest.mark.parametrize("name", ["simple_rnn", "stacked_simple_rnn", "lstm"])
def test_book_configs_load(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.name == name
    assert config.data.num_words == 10000 and config.data.maxlen == 500
    assert config.train.optimizer == "rmsprop"


def test_book_settings():
    simple, stacked, lstm = (load_config(CONFIGS / f"{n}.yaml") for n in ("simple_rnn", "stacked_simple_rnn", "lstm"))
    assert simple.model.layers == (LayerConfig(type="simple_rnn", units=32),)
    assert simple.train.batch_size == 32
    assert stacked.model.layers == (LayerConfig(type="simple_rnn", units=32),) * 4
    assert lstm.model.layers == (LayerConfig(type="lstm", units=32),)
    assert lstm.train.batch_size == 128


def test_defaults_fill_what_the_file_leaves_out(tmp_path):
    config = load_config(write(tmp_path, "train: {epochs: 3}\n"))
    assert config.train.epochs == 3
    assert config.data.validation_split == 0.2
    assert config.model == Config().model


def test_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, "{}\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 5


def test_dump_round_trips(tmp_path):
    config = load_config(CONFIGS / "stacked_simple_rnn.yaml", ["model.layers.1.units=16"])
    again = load_config(write(tmp_path, dump_config(config)))
    assert again == config


def test_overrides_with_dotted_keys(tmp_path):
    path = write(tmp_path, "model:\n  layers:\n    - {type: lstm, units: 32}\n")
    config = load_config(path, ["train.epochs=3", "data.padding=post", "model.layers.0.bidirectional=true",
                                "train.early_stopping.patience=2"])
    assert config.train.epochs == 3
    assert config.data.padding == "post"
    assert config.model.layers[0].bidirectional is True
    assert config.train.early_stopping.patience == 2


@pytest.mark.parametrize("text, overrides, expected", [
    ("train: {epochz: 3}\n", [], "unknown key 'train.epochz'; did you mean 'epochs'?"),
    ("trian: {}\n", [], "unknown key 'trian'; did you mean 'train'?"),
    ("train: {epochs: three}\n", [], "train.epochs: expected an integer, got str 'three'"),
    ("train: {epochs: 0}\n", [], "train.epochs: 0 is out of range; expected an integer >= 1"),
    ("data: {validation_split: 1.5}\n", [], "data.validation_split: 1.5 is out of range"),
    ("data: {padding: middle}\n", [], "data.padding: 'middle' is not allowed; allowed: pre, post"),
    ("model: {layers: [{type: transformer}]}\n", [],
     "model.layers[0].type: unknown layer type 'transformer'; allowed: simple_rnn, lstm, gru"),
    ("model: {layers: [{units: 4}]}\n", [], "'model.layers[0].type' is required"),
    ("model: {layers: []}\n", [], "model.layers"),
    ("model: {layers: [{type: lstm, dropout: 1.0}]}\n", [], "model.layers[0].dropout: 1.0 is out of range"),
    ("data: {source: aclimdb}\n", [], "data.path: required when data.source is aclimdb"),
    ("data: {validation_by: movie}\n", [], "data.validation_by: movie needs data.source aclimdb (--data PATH)"),
    ("{}\n", ["data.validation_by=film"], "--set data.validation_by=film: 'film' is not allowed; allowed: review, movie"),
    ("train: {ema_momentum: 1}\n", [], "train.ema_momentum: 1.0 is out of range; expected a number between 0 and 1"),
    ("{}\n", ["train.ema_momentum=fast"], "--set train.ema_momentum=fast: expected a number or null, got str 'fast'"),
    ("{}\n", ["train.batch_size=big"], "--set train.batch_size=big: expected an integer, got str 'big'"),
    ("{}\n", ["train.steps_per_execution=0"],
     "--set train.steps_per_execution=0: 0 is out of range; expected an integer >= 1, or null for the backend's default"),
    ("{}\n", ["train.precision=float16"],
     "--set train.precision=float16: 'float16' is not allowed; allowed: float32, mixed_float16, mixed_bfloat16"),
    ("train: {precision: mixed_float16, ema_momentum: 0.99}\n", [],
     "train.ema_momentum: 0.99 cannot be combined with train.precision mixed_float16"),
    ("{}\n", ["train.bogus=1"], "unknown key 'train.bogus'"),
    ("{}\n", ["name=../../x"], "--set name=../../x: '../../x' cannot name a run folder"),
    ("{}\n", ["name=/tmp/x"], "--set name=/tmp/x: '/tmp/x' cannot name a run folder"),
    ("{}\n", ["name=a/b"], "--set name=a/b: 'a/b' cannot name a run folder"),
    ("name: .hidden\n", [], "name: '.hidden' cannot name a run folder"),
    ("{}\n", ["epochs"], "expected KEY=VALUE"),
    ("{}\n", ["model.layers.3.units=8"], "index 3 is outside the list"),
    ("- a\n- b\n", [], "a config is a mapping"),
    # Numbers at the edges: finite, and in the range their consumer takes
    ("train: {learning_rate: .inf}\n", [], "train.learning_rate: inf is out of range; expected a finite number"),
    ("{}\n", ["train.learning_rate=1e400"], "--set train.learning_rate=1e400: inf is out of range; expected a finite"),
    ("{}\n", ["train.learning_rate=.nan"], "train.learning_rate=.nan: nan is out of range; expected a finite"),
    ("{}\n", ["train.seed=-1"], "--set train.seed=-1: -1 is out of range; expected an integer >= 0"),
    ("{}\n", ["train.clipnorm=0"], "--set train.clipnorm=0: 0.0 is out of range; expected a number > 0"),
    ("train: {weight_decay: -0.1}\n", [], "train.weight_decay: -0.1 is out of range; expected a number >= 0"),
    ("{}\n", ["model.pooling=top"],
     "--set model.pooling=top: 'top' is not allowed; allowed: last, max, mean, max_mean, attention"),
    ("model: {embedding_dropout: 1}\n", [], "model.embedding_dropout: 1.0 is out of range; expected a number in [0, 1)"),
    ("{}\n", ["model.spatial_dropout=-0.1"], "--set model.spatial_dropout=-0.1: -0.1 is out of range; expected a number in"),
    ("{}\n", ["model.embedding_trainable=maybe"], "--set model.embedding_trainable=maybe: expected true or false"),
    ("model: {embedding_file: 3}\n", [], "model.embedding_file: expected"),
    ("{}\n", ["model.bigram_buckets=-3"], "--set model.bigram_buckets=-3: -3 is out of range; expected an integer >= 0"),
    ("model: {bigram_buckets: 1009}\ndata: {num_words: 50000}\n", [],
     "model.bigram_buckets: word pairs need data.num_words <= 46,340"),
    ("data: {seed: 4294967296}\n", [], "data.seed: 4294967296 is out of range; expected an integer of at most"),
    ("data: {maxlen: 99999999999999999999}\n", [], "data.maxlen: 99999999999999999999 is out of range"),
    ("{}\n", ["data.validation_split=.nan"], "data.validation_split=.nan: nan is out of range"),
    # Inputs built to exhaust: one short line
    ("{}\n", ["train.epochs=" + "[" * 3000], "--set train.epochs: nested deeper than 64 levels"),
    ("train: " + "{a: " * 200 + "1" + "}" * 200 + "\n", [], "nested deeper than 64 levels"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)), [],
     "more than 100,000 values once its aliases (*name) are expanded"),
    ("train: {epochs: &a [*a]}\n", [], "nested deeper than 64 levels"),
    ("train: {epochs: " + "x" * 100_000 + "}\n", [], "train.epochs: expected an integer, got str 'xxxx"),
])
def test_bad_configs_name_the_key_and_what_is_allowed(tmp_path, text, overrides, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    assert expected in str(err.value)
    assert "\n" not in str(err.value) and len(err.value.lines()[0]) < 400


def test_yaml_1_2_numbers_are_numbers(tmp_path):
    config = load_config(write(tmp_path, "train: {learning_rate: 1e-3}\n"), ["data.validation_split=25e-2"])
    assert config.train.learning_rate == 0.001 and config.data.validation_split == 0.25


def test_several_bad_keys_are_listed_together_each_by_where_it_was_set(tmp_path):
    path = write(tmp_path, "data: {maxlen: 0, num_word: 5}\nmodel:\n  layers:\n    - {type: lstmx}\n"
                           "    - {type: gru, units: -1}\ntrain: {epochs: many}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.batch_size=0", "model.embedding_dim=x"])
    assert str(err.value) == f"{path}: 7 problems"
    assert err.value.lines()[1:] == [
        f"  {path}: data.maxlen: 0 is out of range; expected an integer >= 1",
        f"  {path}: unknown key 'data.num_word'; did you mean 'num_words'?",
        "  --set model.embedding_dim=x: expected an integer, got str 'x'",
        f"  {path}: model.layers[0].type: unknown layer type 'lstmx'; allowed: simple_rnn, lstm, gru",
        f"  {path}: model.layers[1].units: -1 is out of range; expected an integer >= 1",
        "  --set train.batch_size=0: 0 is out of range; expected an integer >= 1",
        f"  {path}: train.epochs: expected an integer, got str 'many'",
    ]
    result = CliRunner().invoke(main, ["train", "--config", str(path), "--set", "train.batch_size=0"])
    assert result.exit_code == 2 and result.output.splitlines()[0] == f"Error: {path}: 6 problems"
    assert len(result.output.splitlines()) == 7


def test_a_bad_set_value_names_the_set_not_the_file(tmp_path):
    path = write(tmp_path, "train: {epochs: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.epochs=abc"])
    assert str(err.value) == "--set train.epochs=abc: expected an integer, got str 'abc'"
    with pytest.raises(ConfigError) as err:  # a section replaced by --set: the key inside it is named
        load_config(path, ["model.layers=[{type: gru, units: 0}]"])
    assert str(err.value) == ("--set model.layers=[{type: gru, units: 0}]: model.layers[0].units: 0 is out of range; "
                              "expected an integer >= 1")


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "data:\n  num_words: 10\n  maxlen: [1, 2\ntrain: {}\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml, line \d+: malformed YAML"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, args, expected", [
    ("train: {epochz: 3}\n", [], "did you mean 'epochs'?"),
    ("model: {layers: [{type: rnn}]}\n", [], "allowed: simple_rnn, lstm, gru"),
    ("train: [1\n", [], "malformed YAML"),
    ("{}\n", ["--set", "train.epochs=-1"], "--set train.epochs=-1: -1 is out of range"),
])
def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, text, args, expected):
    path = write(tmp_path, text)
    for command in (["train", "--config", str(path), *args], ["summary", "--config", str(path), *args]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert expected in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_cli_missing_config_file(tmp_path):
    result = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "missing.yaml: config file not found" in result.output
