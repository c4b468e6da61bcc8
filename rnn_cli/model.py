"""Embedding -> stacked recurrent layers -> Dense head, built from the model config: Dense(1, sigmoid)
for two classes (the book's), Dense(N, softmax) for N."""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import numpy as np

from rnn_cli.backends import steps_per_execution, xla
from rnn_cli.config import LayerConfig, ModelConfig, TrainConfig, layer_name
from rnn_cli.ensemble import members
from rnn_cli.files import atomic_path
from rnn_cli.gradients import summed_rows
from rnn_cli.metrics import THRESHOLD  # noqa: F401 - the model's threshold, where its users look
from rnn_cli.pairs import WordPairs
from rnn_cli.pooling import Pooling
from rnn_cli.projected import faster_loops
from rnn_cli.vectors import read_vectors

RECURRENT = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
OPTIMIZERS = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
              "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}
# The loss averages over the sample weights, not over the rows of a batch: with weights all 1 (every
# full batch) it is the usual mean, and a short batch filled up with zero-weight copies of its
# reviews (batches.Batches) trains as the short batch itself would.
LOSS_REDUCTION = "mean_with_sample_weight"


def build_model(config: ModelConfig, num_words: int, mask_zero: bool = False,
                precision: str = "float32", classes: int = 2) -> keras.Model:
    """The classifier; inputs are (batch, time) token ids of any length.

    Args:
        config: the model section.
        num_words: rows of the embedding (the vocabulary cap, reserved indices included).
        mask_zero: let padding (index 0) be skipped by the recurrent layers.
        precision: the dtype policy of every layer but the head, which computes in float32 so
            the probabilities and the loss keep their precision (as Keras' guide advises).
        classes: two: one sigmoid output, the probability of the second class; more: a softmax.
    """
    inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(num_words, config.embedding_dim, mask_zero=mask_zero, name="embedding",
                               dtype=precision, trainable=config.embedding_trainable)(inputs)
    if config.bigram_buckets:
        x = WordPairs(config.bigram_buckets, config.embedding_dim, num_words, name="bigrams", dtype=precision)([x, inputs])
    if config.embedding_dropout:  # one draw per word: its whole vector is kept or zeroed
        x = keras.layers.Dropout(config.embedding_dropout, noise_shape=(None, None, 1),
                                 name="embedding_dropout", dtype=precision)(x)
    if config.spatial_dropout:
        x = keras.layers.SpatialDropout1D(config.spatial_dropout, name="spatial_dropout", dtype=precision)(x)
    last = len(config.layers) - 1
    pooled = config.pooling != "last"
    for i, layer in enumerate(config.layers):
        x = recurrent_layer(layer, return_sequences=i < last or pooled, name=layer_name(layer, i), dtype=precision)(x)
    if pooled:  # float32, as the head: a softmax over a review's steps and a sum of many
        x = Pooling(config.pooling, name="pooling", dtype="float32")([x, inputs])
    units, activation = (1, "sigmoid") if classes == 2 else (classes, "softmax")
    outputs = keras.layers.Dense(units, activation=activation, name="head", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name="imdb_" + "_".join(l.type for l in config.layers))
    return faster_loops(model)  # the faster loops (rnn_cli/projected.py)


def start_embedding(model: keras.Model, config: ModelConfig, index: dict[str, int]) -> dict:
    """Rows of the embedding set from `config.embedding_file`'s vectors for the words of `index` (word to
    token id) it covers; the others keep their random start. Returns what run.json records."""
    embedding = model.get_layer("embedding")
    rows, vectors = read_vectors(config.embedding_file, index, config.embedding_dim)
    rows_in_range = rows < embedding.input_dim  # the vocabulary may hold more words than num_words keeps
    matrix = np.array(embedding.embeddings)
    matrix[rows[rows_in_range]] = vectors[rows_in_range]
    embedding.embeddings.assign(matrix)
    words = sum(1 for row in index.values() if row < embedding.input_dim)
    return {"path": config.embedding_file, "covered": int(rows_in_range.sum()), "words": words,
            "trainable": config.embedding_trainable}


def recurrent_layer(config: LayerConfig, return_sequences: bool, name: str,
                    dtype: str = "float32") -> keras.layers.Layer:
    """One recurrent layer, wrapped in Bidirectional when asked."""
    layer = RECURRENT[config.type](
        config.units, dropout=config.dropout, recurrent_dropout=config.recurrent_dropout,
        return_sequences=return_sequences, name=name, dtype=dtype)
    if config.bidirectional:
        return keras.layers.Bidirectional(layer, name=f"bidirectional_{name}", dtype=dtype)
    return layer


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int = 1) -> None:
    """Cross-entropy (binary, or sparse categorical for a softmax head) with the configured optimizer,
    schedule, gradient clipping, weight decay, weight averaging and loss scaling (mixed_float16); accuracy."""
    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps_per_epoch * config.epochs)
    options = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum else {}
    if config.clipnorm is not None:
        options["global_clipnorm"] = config.clipnorm
    if config.weight_decay is not None:
        options["weight_decay"] = config.weight_decay
    optimizer = OPTIMIZERS[config.optimizer](learning_rate=learning_rate, **options)
    if config.precision == "mixed_float16":
        # Scales the loss up so that float16 gradients do not underflow (Keras does this itself only
        # when the model's own policy is mixed; here every layer but the head has it).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    loss = (keras.losses.BinaryCrossentropy if class_count(model) == 2
            else keras.losses.SparseCategoricalCrossentropy)(reduction=LOSS_REDUCTION)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"],
                  jit_compile=xla(config, keras.backend.backend()),
                  steps_per_execution=steps_per_execution(config, keras.backend.backend()))
    summed_rows(model)  # an embedding's gradient summed per word, as every backend but TensorFlow gives it
    build_training_state(model)


def build_training_state(model: keras.Model) -> keras.Model:
    """`model`'s optimizer and compiled metrics built before its first step, on TensorFlow; returns the model.

    Keras builds them while TensorFlow traces the first training step (without a distribution strategy), and
    TensorFlow traces a function that creates variables twice: built first, the step is traced once, about 0.25 s
    sooner in every process (docs/performance.md). Nothing computed changes."""
    if keras.backend.backend() != "tensorflow" or getattr(model, "optimizer", None) is None:
        return model
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    classes = model.output_shape[-1]
    # Keras picks the accuracy (binary or sparse categorical) from the shapes of a batch's labels and scores.
    model.compute_metrics(None, np.zeros((1,), np.float32), np.full((1, classes), 0.5, np.float32))
    model.reset_metrics()
    return model


def class_count(model: keras.Model) -> int:
    """How many classes the model's head tells apart (a single sigmoid output: two)."""
    return max(members(model)[0].get_layer("head").units, 2)


def averages_over_weights(model: keras.Model) -> bool:
    """Whether the model's loss averages over sample weights (compile_model's), so that a short batch
    may be filled up with zero-weight copies; a checkpoint of an earlier version averages over rows."""
    return getattr(model.loss, "reduction", None) == LOSS_REDUCTION


def reseed_dropout(model: keras.Model, seed: int, epoch: int) -> None:
    """Set every dropout mask generator of `model` to a state drawn from (seed, epoch): an epoch's
    masks are then the same whether the run went on from epoch 1 or resumed from a checkpoint, which
    keeps no generator state."""
    generators = [v for v in model.variables if v.name == "seed_generator_state"]
    states = np.random.default_rng([seed, epoch]).integers(0, 2**31 - 1, size=len(generators))
    for variable, state in zip(generators, states):
        variable.assign(np.array([state, 0], dtype=variable.dtype))


def masks_padding(model: keras.Model) -> bool:
    """Whether `model` was built for masked, bucketed batches (its embedding masks index 0); an ensemble's
    members all were, or none."""
    return bool(members(model)[0].get_layer("embedding").mask_zero)


def keeps_average(model: keras.Model) -> bool:
    """Whether the model's optimizer keeps a moving average of the weights (train.ema_momentum)."""
    return bool(getattr(model.optimizer, "use_ema", False))


@contextlib.contextmanager
def averaged_weights(model: keras.Model):
    """Inside the block the model holds its optimizer's averaged weights, when it keeps them; its
    own after. The checkpoint keeps the weights themselves, from which training goes on."""
    if not keeps_average(model):
        yield
        return
    own = model.get_weights()
    model.optimizer.finalize_variable_values(model.trainable_variables)
    try:
        yield
    finally:
        model.set_weights(own)


def save_model(model: keras.Model, path: Path) -> None:
    """The model (or, for a `.weights.h5` path, its weights) written through `atomic_path`."""
    with atomic_path(path) as tmp:
        model.save_weights(tmp) if path.name.endswith(".weights.h5") else model.save(tmp)


def kernel_warnings(kernels: dict[str, dict], backend: str = "tensorflow") -> list[str]:
    """A warning for every LSTM/GRU layer that runs step by step on a GPU (`rnn_cli.backends.kernels`),
    which the config can change (e.g. recurrent_dropout 0); SimpleRNN never has another kernel, and
    only PyTorch's loop, dispatched from Python step by step, makes it slower than the CPU."""
    lines = []
    for name, entry in kernels.items():
        if name.startswith("simple_rnn"):
            if backend == "torch":  # measured on an H200: 21.6 s an epoch against its CPU's 12.9 s
                lines.append(f"warning: {name} runs step by step on PyTorch's GPU, slower than on the CPU "
                             "(docs/performance.md); use --device cpu, or train.backend jax or tensorflow")
        elif entry["kernel"] == "loop":
            lines.append(f"warning: {name} will not use cuDNN on the GPU ({entry['why']}), and runs several "
                         "times slower")
    return lines


def precision_warnings(config: TrainConfig, device: str) -> list[str]:
    """A warning for mixed precision on a CPU, where it was measured slower (docs/performance.md)."""
    if config.precision == "float32" or device.startswith("gpu"):
        return []
    return [f"warning: train.precision is {config.precision}, which is slower on a CPU, not faster "
            "(mixed precision pays on GPUs); float32 is the CPU's choice"]


def parameters_before_head(model: keras.Model) -> int:
    """Parameters of everything but the Dense head: the figure the book quotes."""
    return model.count_params() - model.get_layer("head").count_params()


def summary_text(model: keras.Model) -> str:
    """Keras' model summary as plain text, with the book's "before the head" count added."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=78)
    lines.append(f" Parameters before the Dense head: {parameters_before_head(model):,}")
    return "\n".join(line.rstrip() for line in lines) + "\n"
