"""rnn_cli.memory: sizes the checks accept but the machine cannot hold are refused before anything
is allocated, naming the key."""

import subprocess
import sys

import pytest

from rnn_cli.memory import ACTIVATION_COPIES, BYTES, check_batches_fit, check_model_fits, parameter_terms
from rnn_cli.config import load_config
from rnn_cli.errors import ConfigError

GIB = 2**30


@pytest.mark.parametrize("name, before_head", [("simple_rnn", 322_080), ("stacked_simple_rnn", 328_320),
                                               ("lstm", 328_320), ("best", 332_672)])
def test_the_estimate_counts_the_parameters_keras_does(name, before_head):
    config = load_config(f"configs/{name}.yaml")
    assert sum(count for _, _, count in parameter_terms(config)) == before_head


@pytest.mark.parametrize("override, key", [("model.layers.0.units=1000000", "model.layers.0.units"),
                                           ("model.embedding_dim=1000000", "model.embedding_dim"),
                                           ("data.num_words=1000000000", "data.num_words")])
def test_a_model_too_big_names_its_key_and_the_memory(override, key):
    config = load_config("configs/simple_rnn.yaml", [override])
    with pytest.raises(ConfigError, match=rf"^{key}: \d+ makes a model .* about [\d,.]+ GiB, more than the 8.0 GiB"):
        check_model_fits(config, available=8 * GIB)
    check_model_fits(load_config("configs/best.yaml"), available=8 * GIB)


def test_a_batch_too_big_for_memory_is_refused_but_one_larger_than_the_data_is_not():
    config = load_config("configs/simple_rnn.yaml", ["train.batch_size=1000000"])
    with pytest.raises(ConfigError, match=r"^train.batch_size: 1000000 makes batches"):
        check_batches_fit(config, reviews=10**6, available=8 * GIB)
    check_batches_fit(config, reviews=200, available=8 * GIB)  # only 200 reviews: one batch of 200
    long = load_config("configs/simple_rnn.yaml", ["data.maxlen=100000000", "data.bucketing=false"])
    with pytest.raises(ConfigError, match=r"^data.maxlen: 100000000 makes batches"):
        check_batches_fit(long, reviews=10**6, longest=300, available=8 * GIB)
    bucketed = load_config("configs/simple_rnn.yaml", ["data.maxlen=100000000"])
    check_batches_fit(bucketed, reviews=10**6, longest=300, available=8 * GIB)  # padded to 384 at most


def test_a_null_bucket_width_counts_the_longest_batch_of_either_width():
    """An LSTM's null width is 128 or half the longest review, whichever its backend and device take: its longest
    batch 384 steps (the 128 multiple above 300), not 300."""
    config = load_config("configs/lstm.yaml")
    widths = config.model.embedding_dim + 4 * config.model.layers[0].units  # the embedding's and the gates'
    step = config.train.batch_size * widths * BYTES * ACTIVATION_COPIES  # bytes a time step of a batch
    with pytest.raises(ConfigError, match=r"^train.batch_size: 128 makes batches"):
        check_batches_fit(config, reviews=10**6, longest=300, available=340 * step)
    check_batches_fit(config, reviews=10**6, longest=300, available=390 * step)


def test_rnn_summary_refuses_before_tensorflow_loads():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom rnn_cli.cli import main\n"
            "result = CliRunner().invoke(main, ['summary', '--config', 'configs/simple_rnn.yaml', "
            "'--set', 'model.layers.0.units=1000000'])\n"
            "print(result.exit_code, 'tensorflow' in sys.modules, repr(result.output))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    code, loaded, output = done.stdout.split(" ", 2)
    assert (code, loaded) == ("2", "False")
    assert "model.layers.0.units: 1000000 makes a model" in output and output.count("\\n") == 1
