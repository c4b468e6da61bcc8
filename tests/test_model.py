import keras
import numpy as np
import pytest

from rnn_cli.config import LayerConfig, ModelConfig, TrainConfig
from rnn_cli.model import build_model, compile_model, parameters_before_head, summary_text


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


def test_summary_lists_layers_and_the_book_count():
    text = summary_text(build_model(ModelConfig(layers=layers("simple_rnn")), num_words=10000))
    assert "embedding (Embedding)" in text and "SimpleRNN" in text
    assert "Parameters before the Dense head: 322,080" in text
