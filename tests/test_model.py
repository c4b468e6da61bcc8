import keras
import numpy as np
import pytest

from rnn_cli import backends
from rnn_cli.config import LayerConfig, ModelConfig, TrainConfig
from rnn_cli.model import (averages_over_weights, build_model, build_training_state, compile_model, kernel_warnings,
                           parameters_before_head, precision_warnings, summary_text)
from tests.conftest import invoke


def layers(*types, **fields):
    return tuple(LayerConfig(type=t, units=32, **fields) for t in types)


@pytest.mark.parametrize("stack, expected", [
    (layers("simple_rnn"), 322_080),  # the book's Embedding(10000, 32) -> SimpleRNN(32)
    (layers(*["simple_rnn"] * 4), 328_320),  # four stacked SimpleRNN(32)
    (layers("lstm"), 328_320),  # 320,000 + 4 * (32*32 + 32*32 + 32)
    (layers("gru"), 326_336),  # Keras' reset_after GRU: 3 * (32*32 + 32*32 + 2*32)
    (layers("lstm", bidirectional=True), 336_640),
])
def test_parameter_counts(stack, expected):
    model = build_model(ModelConfig(embedding_dim=32, layers=stack), num_words=10000)
    assert parameters_before_head(model) == expected
    head_inputs = 64 if stack[-1].bidirectional else 32
    assert model.count_params() == expected + head_inputs + 1


def test_only_the_last_layer_returns_a_vector():
    model = build_model(ModelConfig(layers=layers("simple_rnn", "lstm", "gru")), num_words=100)
    recurrent = [layer for layer in model.layers if layer.name.split("_")[0] in ("simple", "lstm", "gru")]
    assert [layer.return_sequences for layer in recurrent] == [True, True, False]


@pytest.mark.parametrize("pooling, head_inputs, extra", [("max", 32, 0), ("mean", 32, 0), ("max_mean", 64, 0),
                                                          ("attention", 32, 32)])
def test_pooling_and_dropouts_add_layers_but_the_default_is_the_books_model(pooling, head_inputs, extra):
    config = ModelConfig(embedding_dim=32, layers=layers("simple_rnn"), pooling=pooling, embedding_dropout=0.1,
                         spatial_dropout=0.2, embedding_trainable=False)
    model = build_model(config, num_words=10000)
    names = [layer.name for layer in model.layers]
    assert names == ["tokens", "embedding", "embedding_dropout", "spatial_dropout", "simple_rnn_0", "pooling", "head"]
    assert model.get_layer("simple_rnn_0").return_sequences  # the pooling reads every step's output
    assert model.count_params() == 322_080 + extra + head_inputs + 1
    assert not model.get_layer("embedding").trainable and model.get_layer("head").trainable
    book = build_model(ModelConfig(embedding_dim=32, layers=layers("simple_rnn")), num_words=10000)
    assert [layer.name for layer in book.layers] == ["tokens", "embedding", "simple_rnn_0", "head"]


def test_word_pairs_add_a_table_beside_the_embedding():
    config = ModelConfig(embedding_dim=32, layers=layers("simple_rnn"), bigram_buckets=1009)
    model = build_model(config, num_words=10000, mask_zero=True)
    assert [layer.name for layer in model.layers] == ["tokens", "embedding", "bigrams", "simple_rnn_0", "head"]
    assert parameters_before_head(model) == 322_080 + 1009 * 32
    assert not np.any(np.asarray(model.get_layer("bigrams").embeddings))  # training starts from the words alone


def test_any_sequence_length_gives_one_probability_per_review():
    model = build_model(ModelConfig(embedding_dim=4, layers=layers("lstm")), num_words=50)
    for length in (7, 500):
        out = model.predict(np.ones((3, length), dtype="int32"), verbose=0)
        assert out.shape == (3, 1) and np.all((out > 0) & (out < 1))


def test_compile_uses_the_configured_optimizer():
    model = build_model(ModelConfig(embedding_dim=4, layers=layers("gru")), num_words=50)
    compile_model(model, TrainConfig(optimizer="adam", learning_rate=0.005))
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)


def test_gradient_clipping_and_weight_decay_reach_the_optimizer_and_clip_a_step():
    model = build_model(ModelConfig(embedding_dim=4, layers=layers("gru")), num_words=50)
    compile_model(model, TrainConfig(optimizer="adamw"))
    assert model.optimizer.global_clipnorm is None and model.optimizer.weight_decay == pytest.approx(0.004)
    compile_model(model, TrainConfig(optimizer="adam", clipnorm=0.5, weight_decay=0.01))
    assert model.optimizer.global_clipnorm == 0.5 and model.optimizer.weight_decay == pytest.approx(0.01)
    # One SGD step of rate 1 moves the weights by the clipped gradient: its global norm is at most 0.5.
    for clipnorm in (None, 0.5):
        model = build_model(ModelConfig(embedding_dim=4, layers=layers("gru")), num_words=50)
        compile_model(model, TrainConfig(optimizer="sgd", learning_rate=1.0, clipnorm=clipnorm))
        x, y = np.random.default_rng(0).integers(3, 50, size=(8, 6)), np.ones(8)
        before = [w.copy() for w in model.get_weights()]
        model.train_on_batch(x, y)
        moved = np.sqrt(sum(float(((w - b) ** 2).sum()) for w, b in zip(model.get_weights(), before)))
        assert (moved <= 0.5 * 1.01) == (clipnorm is not None), (clipnorm, moved)  # float32 arithmetic


def test_the_loss_averages_over_sample_weights_saved_and_loaded(tmp_path):
    """What lets training fill its short batch (batches.Batches); a model saved by an earlier version,
    its loss averaged over rows, is recognized and gets its short batch unfilled."""
    x, y = np.ones((4, 5), dtype="int32"), np.ones(4)
    for loss, averages in ((None, True), ("binary_crossentropy", False)):
        model = build_model(ModelConfig(embedding_dim=4, layers=layers("simple_rnn")), num_words=50)
        compile_model(model, TrainConfig())
        if loss:
            model.compile(optimizer="rmsprop", loss=loss)
        model.fit(x, y, verbose=0)
        model.save(tmp_path / "model.keras")
        assert averages_over_weights(model) is averages
        assert averages_over_weights(keras.saving.load_model(tmp_path / "model.keras")) is averages


@pytest.mark.parametrize("classes, accuracy", [(2, "BinaryAccuracy"), (3, "SparseCategoricalAccuracy")])
def test_a_compiled_or_resumed_model_s_first_step_creates_no_variable(tmp_path, classes, accuracy):
    """Keras builds the optimizer and the compiled metrics in the first step TensorFlow traces, and TensorFlow
    traces a step that creates variables twice: built beforehand, the step is traced once. The accuracy is the
    one Keras picks from a batch's shapes."""
    import tensorflow as tf

    from rnn_cli.loading import load_keras

    model = build_model(ModelConfig(embedding_dim=4, layers=layers("lstm")), num_words=50, mask_zero=True,
                        classes=classes)
    compile_model(model, TrainConfig(jit_compile=False))
    model.save(tmp_path / "model.keras")
    x, y = np.ones((4, 5), dtype="int32"), (np.arange(4) % classes).astype("float32")
    for ready in (model, build_training_state(load_keras(tmp_path / "model.keras"))):
        created = []

        def creator(next_creator, **fields):
            created.append(fields.get("name"))
            return next_creator(**fields)

        with tf.variable_creator_scope(creator):
            ready.train_on_batch(x, y)
        assert created == []
        assert [type(m).__name__ for m in ready.metrics[1].metrics] == [accuracy]


def test_summary_lists_layers_and_the_book_count():
    text = summary_text(build_model(ModelConfig(layers=layers("simple_rnn")), num_words=10000))
    assert "embedding (Embedding)" in text and "SimpleRNN" in text
    assert "Parameters before the Dense head: 322,080" in text


def test_compile_turns_xla_on_or_off_as_configured():
    for jit in (True, False):
        model = build_model(ModelConfig(embedding_dim=4, layers=layers("simple_rnn")), num_words=50)
        compile_model(model, TrainConfig(jit_compile=jit))
        assert model.jit_compile is jit


def test_kernel_warnings_name_only_what_the_config_keeps_off_cudnn():
    stack = (LayerConfig(type="lstm"), LayerConfig(type="gru", recurrent_dropout=0.25), LayerConfig(type="simple_rnn"))
    kernels = backends.kernels(ModelConfig(layers=stack), "tensorflow", gpu=True, masked=True)
    (warning,) = kernel_warnings(kernels)  # SimpleRNN never had the kernel: no warning for it
    assert warning.startswith("warning: gru_1 will not use cuDNN") and "recurrent_dropout" in warning
    assert kernel_warnings(backends.kernels(ModelConfig(layers=stack[:1]), "jax", gpu=True, masked=False)) == []
    # SimpleRNN warns only where the GPU makes it slower than the CPU: PyTorch's Python-dispatched loop.
    simple = backends.kernels(ModelConfig(layers=stack[2:]), "torch", gpu=True, masked=True)
    (warning,) = kernel_warnings(simple, "torch")
    assert warning.startswith("warning: simple_rnn_0 runs step by step on PyTorch's GPU") and "--device cpu" in warning
    assert kernel_warnings(backends.kernels(ModelConfig(layers=stack[2:]), "jax", gpu=True, masked=True), "jax") == []


def test_cosine_schedule_decays_over_all_the_epochs():
    model = build_model(ModelConfig(embedding_dim=4, layers=layers("lstm")), num_words=50)
    compile_model(model, TrainConfig(learning_rate=0.004, schedule="cosine", epochs=2), steps_per_epoch=10)
    model.optimizer.iterations.assign(10)  # halfway through 2 epochs of 10 steps
    assert float(model.optimizer.learning_rate) == pytest.approx(0.002)
    model.optimizer.iterations.assign(20)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_computes_in_16_bits_keeps_float32_weights_and_head(precision):
    stack = (LayerConfig(type="lstm", units=4, bidirectional=True), LayerConfig(type="gru", units=4))
    model = build_model(ModelConfig(embedding_dim=4, layers=stack), num_words=50, precision=precision)
    compute = precision.removeprefix("mixed_")
    for layer in model.layers[1:-1]:  # embedding and recurrent layers; [0] is the input
        assert (layer.compute_dtype, layer.variable_dtype) == (compute, "float32"), layer.name
    assert all(v.dtype == "float32" for v in model.weights)
    assert model.get_layer("head").compute_dtype == "float32"
    assert model.predict(np.ones((2, 9), dtype="int32"), verbose=0).dtype == np.float32
    compile_model(model, TrainConfig(precision=precision))
    # float16 needs its loss scaled up so that small gradients do not vanish; bfloat16 does not.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")


def test_mixed_precision_on_a_cpu_is_warned_about():
    (warning,) = precision_warnings(TrainConfig(precision="mixed_bfloat16"), "cpu")
    assert "train.precision is mixed_bfloat16" in warning and "slower on a CPU" in warning
    assert precision_warnings(TrainConfig(precision="mixed_float16"), "gpu:0") == []
    assert precision_warnings(TrainConfig(), "cpu") == []


def test_summary_prints_the_book_parameter_count():
    result = invoke("summary", "--config", "configs/simple_rnn.yaml")
    assert result.exit_code == 0, result.output
    assert "Parameters before the Dense head: 322,080" in result.output


def test_more_than_two_classes_get_a_softmax_head_and_rnn_summary_shows_it():
    model = build_model(ModelConfig(layers=layers("lstm")), num_words=100, classes=4)
    assert model.get_layer("head").units == 4 and model.output_shape == (None, 4)
    compile_model(model, TrainConfig(jit_compile=False))
    assert type(model.loss).__name__ == "SparseCategoricalCrossentropy"
    result = invoke("summary", "--config", "configs/simple_rnn.yaml", "--classes", "3")
    assert result.exit_code == 0, result.output
    assert "Parameters before the Dense head: 322,080" in result.output and "(None, 3)" in result.output


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_a_word_seen_twice_in_a_batch_steps_on_its_summed_gradient_and_so_does_a_loaded_model(tmp_path, optimizer):
    """The optimizer's average of squared gradients gets the square of a word's whole gradient (JAX's and
    PyTorch's arithmetic), not the sum of its squares per occurrence (Keras 3 on TensorFlow's own)."""
    import tensorflow as tf

    from rnn_cli.loading import load_keras

    config = ModelConfig(embedding_dim=3, layers=(LayerConfig(type="simple_rnn", units=2),))
    model = build_model(config, 6, mask_zero=True)
    compile_model(model, TrainConfig(optimizer=optimizer, learning_rate=0.1))
    x, y = np.array([[1, 2, 1, 1], [2, 3, 0, 0]]), np.array([1.0, 0.0])
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    table = model.get_layer("embedding").embeddings
    whole = tf.convert_to_tensor(tape.gradient(loss, [table])[0]).numpy()  # a row per word, summed
    model.train_on_batch(x, y)
    squares = next(v for v in model.optimizer.variables if v.path.endswith("embeddings_velocity")).numpy()
    rho = 0.999 if optimizer == "adam" else 0.9
    np.testing.assert_allclose(squares[1:4], (1 - rho) * whole[1:4] ** 2, rtol=1e-4)
    model.save(tmp_path / "model.keras")
    assert "apply" in vars(load_keras(tmp_path / "model.keras").optimizer)  # a resumed run steps alike
