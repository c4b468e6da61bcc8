"""Whether a config fits in this machine's memory, checked before anything is allocated: a size the
config checks accept (a million units, a batch of a million reviews) would otherwise end in an
out-of-memory traceback or an abort deep inside TensorFlow. The estimates are rough on purpose
(float32, a fixed factor for training state); they only catch sizes that cannot fit."""

from __future__ import annotations

import os
from pathlib import Path

from rnn_cli.config import Config, LayerConfig
from rnn_cli.encoding import bucket_width
from rnn_cli.errors import ConfigError

BYTES = 4  # float32
TRAINING_COPIES = 4  # weights, gradients and up to two optimizer slots (Adam's moments)
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
ACTIVATION_COPIES = 3  # what the forward pass keeps for the backward pass, roughly
DEFAULTS = {"data.num_words": 10000, "model.embedding_dim": 32, "train.batch_size": 32, "data.maxlen": 500}


def available_memory() -> int:
    """Bytes this process can still use: the system's available memory, under a cgroup's limit."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if cgroup != "max":
            limits.append(int(cgroup) - used)
    except (OSError, ValueError):
        pass
    return max(min(limits), 0)


def layer_parameters(layer: LayerConfig, inputs: int) -> int:
    """Keras' parameter count of one recurrent layer reading `inputs` features (GRU: reset_after)."""
    per_gate = layer.units * (inputs + layer.units + (2 if layer.type == "gru" else 1))
    return GATES[layer.type] * per_gate * (2 if layer.bidirectional else 1)


def parameter_terms(config: Config) -> list[tuple[str, int, int]]:
    """(key, its value, parameters it brings) for the embedding and each recurrent layer."""
    model = config.model
    # The embedding's key is the one further above its default.
    key, value = max((("data.num_words", config.data.num_words), ("model.embedding_dim", model.embedding_dim)),
                     key=lambda item: item[1] / DEFAULTS[item[0]])
    terms = [(key, value, config.data.num_words * model.embedding_dim)]
    inputs = model.embedding_dim
    for i, layer in enumerate(model.layers):
        terms.append((f"model.layers.{i}.units", layer.units, layer_parameters(layer, inputs)))
        inputs = layer.units * (2 if layer.bidirectional else 1)
    return terms


def check_model_fits(config: Config, available: int | None = None) -> None:
    """Refuse a model whose weights and training state alone would exceed the memory there is."""
    terms = parameter_terms(config)
    needed = sum(count for _, _, count in terms) * BYTES * TRAINING_COPIES
    available = available_memory() if available is None else available
    if needed > available:
        key, value, _ = max(terms, key=lambda term: term[2])
        raise ConfigError(f"{key}: {value} makes a model whose weights and training state take about "
                          f"{gib(needed)}, more than the {gib(available)} of memory available; use a smaller value")


def check_batches_fit(config: Config, reviews: int, longest: int | None = None, available: int | None = None) -> None:
    """Refuse a batch (of at most `reviews` reviews, bucketed batches at most `longest` tokens long)
    whose activations would exceed the memory there is."""
    rows = min(config.train.batch_size, reviews)
    # A null bucket_width is 128 or, where the loops skip the padding (known once the backend and device are), half
    # the longest review: the longer of the two longest batches either gives.
    bucket_widths = {bucket_width(config.data, skips, longest) for skips in (False, True)}
    steps = max(min(config.data.maxlen, -(-longest // width) * width) for width in bucket_widths) if (
        config.data.bucketing and longest) else config.data.maxlen
    widths = [config.model.embedding_dim] + [
        GATES[layer.type] * layer.units * (2 if layer.bidirectional else 1) for layer in config.model.layers]
    needed = rows * steps * sum(widths) * BYTES * ACTIVATION_COPIES
    available = available_memory() if available is None else available
    if needed > available:
        key, value = max((("train.batch_size", rows), ("data.maxlen", config.data.maxlen)),
                         key=lambda item: item[1] / DEFAULTS[item[0]])
        raise ConfigError(f"{key}: {value} makes batches whose activations take about {gib(needed)}, "
                          f"more than the {gib(available)} of memory available; use a smaller value")


def gib(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB"
