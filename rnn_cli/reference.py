"""A trained model as the NumPy loops of the textbook: what the Keras layers compute, step by step.

Deep Learning with Python writes a SimpleRNN as

    state = 0
    for x_t in inputs:
        out_t = tanh(W @ x_t + U @ state + b)
        state = out_t

and this module is that loop, with the weights read from a Keras model. Keras keeps every
recurrent layer's weights as three arrays:

    kernel            (input_dim, gates * units)   W: input -> every gate, side by side
    recurrent_kernel  (units, gates * units)       U: previous state -> every gate
    bias              (gates * units,)             b  (GRU: two rows, see `gru_step`)

Keras multiplies row vectors, `x_t @ kernel`, where the book writes `W @ x_t`: kernel is W
transposed, the same numbers. The gate blocks sit along the last axis in a fixed order: LSTM
i, f, c, o; GRU z, r, h. Everything here runs in float64 on a batch of sequences at once (the
loop is over time, not over reviews) and is checked against `model.predict` in the tests.

A mask (the embedding's `mask_zero`: token 0 is padding) makes a step a no-op: the state stays as
it was and the output repeats the previous one (or is zero inside Bidirectional with
return_sequences, as Keras does there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The update equations in the notation above, one list of lines per layer kind (`rnn inspect`).
EQUATIONS = {
    "Embedding": ["x_t = E[token_t]    (row token_t of the embedding matrix E)"],
    "WordPairs": ["x_t += P[(token_(t-1) * words + token_t) mod buckets]    (the pair's row of P;",
                  "        none at a review's first token or next to padding)"],
    "SimpleRNN": ["h_t = tanh(W @ x_t + U @ h_(t-1) + b)"],
    "LSTM": [
        "i_t = sigmoid(W_i @ x_t + U_i @ h_(t-1) + b_i)    input gate",
        "f_t = sigmoid(W_f @ x_t + U_f @ h_(t-1) + b_f)    forget gate",
        "c~_t = tanh(W_c @ x_t + U_c @ h_(t-1) + b_c)      candidate carry",
        "o_t = sigmoid(W_o @ x_t + U_o @ h_(t-1) + b_o)    output gate",
        "c_t = f_t * c_(t-1) + i_t * c~_t                  carry",
        "h_t = o_t * tanh(c_t)",
    ],
    "GRU": [
        "z_t = sigmoid(W_z @ x_t + b_z + U_z @ h_(t-1) + b'_z)    update gate",
        "r_t = sigmoid(W_r @ x_t + b_r + U_r @ h_(t-1) + b'_r)    reset gate",
        "h~_t = tanh(W_h @ x_t + b_h + r_t * (U_h @ h_(t-1) + b'_h))",
        "h_t = z_t * h_(t-1) + (1 - z_t) * h~_t",
    ],
    "Dense": ["p = sigmoid(w @ h_T + b)    probability of \"positive\" from the last state"],
}
# model.pooling: what the head reads instead of the last state h_T, over the steps t the review has
# (padding never enters).
POOLED = {
    "max": ["v = max_t h_t    (each unit's largest output over the review)"],
    "mean": ["v = mean_t h_t"],
    "max_mean": ["v = [max_t h_t, mean_t h_t]    (side by side: twice the units)"],
    "attention": ["a_t = softmax_t(q . h_t)    (q: one learned vector, the layer's query)",
                  "v = sum_t a_t h_t"],
}
GATES = {"SimpleRNN": "", "LSTM": "i, f, c, o", "GRU": "z, r, h"}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simple_rnn_step(x_t, state, kernel, recurrent_kernel, bias):
    """The book's loop body: the new state is also the output."""
    (h,) = state
    h = np.tanh(x_t @ kernel + h @ recurrent_kernel + bias)
    return h, (h,)


def lstm_step(x_t, state, kernel, recurrent_kernel, bias):
    """Four gates from one product, split in Keras' order i, f, c, o; the carry c runs beside h."""
    h, c = state
    i, f, c_candidate, o = np.split(x_t @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(c_candidate)
    h = sigmoid(o) * np.tanh(c)
    return h, (h, c)


def gru_step(x_t, state, kernel, recurrent_kernel, bias):
    """Keras' default GRU (reset_after=True): the reset gate scales U_h @ h after the product.

    Its bias has two rows, one added to the input's product and one to the state's.
    """
    (h,) = state
    x_z, x_r, x_h = np.split(x_t @ kernel + bias[0], 3, axis=-1)
    h_z, h_r, h_h = np.split(h @ recurrent_kernel + bias[1], 3, axis=-1)
    z = sigmoid(x_z + h_z)
    r = sigmoid(x_r + h_r)
    candidate = np.tanh(x_h + r * h_h)
    h = z * h + (1 - z) * candidate
    return h, (h,)


STEPS = {"SimpleRNN": (simple_rnn_step, 1), "LSTM": (lstm_step, 2), "GRU": (gru_step, 1)}


def weights(layer) -> list[np.ndarray]:
    """A recurrent layer's kernel, recurrent_kernel and bias as float64 arrays."""
    cell = layer.cell
    activations = (cell.activation.__name__, getattr(cell, "recurrent_activation", sigmoid).__name__)
    if activations != ("tanh", "sigmoid"):
        raise ValueError(f"{layer.name}: the reference knows the default tanh/sigmoid activations only")
    return [np.asarray(w, dtype=np.float64) for w in (cell.kernel, cell.recurrent_kernel, cell.bias)]


def run_layer(layer, x: np.ndarray, mask: np.ndarray | None, go_backwards: bool = False,
              zero_masked: bool = False) -> np.ndarray:
    """Outputs of one recurrent layer at every time step, (batch, time, units), aligned with `x`.

    With `go_backwards` the loop runs from the last step to the first, so outputs[:, t] is the
    state after reading x[:, t:] backwards; the final state is then outputs[:, 0].
    """
    step, n_states = STEPS[type(layer).__name__]
    kernel, recurrent_kernel, bias = weights(layer)
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    state = tuple(np.zeros((batch, units)) for _ in range(n_states))
    output = np.zeros((batch, units))
    outputs = np.empty((batch, steps, units))
    for t in reversed(range(steps)) if go_backwards else range(steps):
        new_output, new_state = step(x[:, t], state, kernel, recurrent_kernel, bias)
        if mask is None:
            output, state = new_output, new_state
        else:
            keep = mask[:, t, None]
            state = tuple(np.where(keep, new, old) for new, old in zip(new_state, state))
            output = np.where(keep, new_output, 0.0 if zero_masked else output)
        outputs[:, t] = output
    return outputs


def run_bidirectional(layer, x: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A forward and a backward copy of a layer, merged: (outputs per step, final output)."""
    zero_masked = layer.return_sequences  # what Keras' Bidirectional sets on both copies
    forward = run_layer(layer.forward_layer, x, mask, zero_masked=zero_masked)
    backward = run_layer(layer.backward_layer, x, mask, go_backwards=True, zero_masked=zero_masked)
    merge = MERGES[layer.merge_mode]
    return merge(forward, backward), merge(forward[:, -1], backward[:, 0])


MERGES = {"concat": lambda a, b: np.concatenate([a, b], axis=-1), "sum": np.add,
          "mul": np.multiply, "ave": lambda a, b: (a + b) / 2}


@dataclass(frozen=True)
class Trace:
    """Everything the forward pass computed, for one batch of token sequences."""

    embedded: np.ndarray  # (batch, time, embedding_dim)
    mask: np.ndarray | None  # (batch, time) True where a token is read; None without mask_zero
    sequences: dict[str, np.ndarray]  # recurrent layer name -> outputs at every step
    last: np.ndarray  # what the head reads: the last recurrent layer's final output, or its pooled outputs
    probabilities: np.ndarray  # (batch,) the head's sigmoid, or (batch, classes) its softmax


RECURRENT = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")


def forward(model, tokens: np.ndarray) -> Trace:
    """The model's forward pass on (batch, time) token ids, layer by layer in NumPy.

    Expects the Embedding (+ WordPairs) -> recurrent layers -> (Pooling) -> Dense head stack that `build_model` makes;
    dropout layers do nothing at inference and are passed by.
    """
    embedding, head = model.get_layer("embedding"), model.get_layer("head")
    recurrent = [layer for layer in model.layers if type(layer).__name__ in RECURRENT]
    pooling = next((layer for layer in model.layers if type(layer).__name__ == "Pooling"), None)
    tokens = np.asarray(tokens)
    embedded = np.asarray(embedding.embeddings, dtype=np.float64)[tokens]
    pairs = next((layer for layer in model.layers if type(layer).__name__ == "WordPairs"), None)
    if pairs is not None:
        rows, read = pair_rows(tokens, pairs.buckets, pairs.words)
        embedded = embedded + np.asarray(pairs.embeddings, dtype=np.float64)[rows] * read[..., None]
    mask = tokens != 0 if embedding.mask_zero else None
    x, sequences, last = embedded, {}, None
    for layer in recurrent:
        if type(layer).__name__ == "Bidirectional":
            outputs, last = run_bidirectional(layer, x, mask)
        else:
            outputs = run_layer(layer, x, mask)
            last = outputs[:, -1]
        sequences[layer.name] = outputs
        x = outputs
    if pooling is not None:
        query = np.asarray(pooling.query, dtype=np.float64) if pooling.weights else None
        last = pool(pooling.mode, x, tokens != 0, query)
    return Trace(embedded=embedded, mask=mask, sequences=sequences,
                 last=last, probabilities=apply_head(head, last))


def pool(mode: str, outputs: np.ndarray, read: np.ndarray, query: np.ndarray | None = None) -> np.ndarray:
    """`rnn_cli.pooling.Pooling`: outputs (batch, time, units) over the steps where `read` (batch, time)
    is True; a review with no step read pools to zeros."""
    read = np.asarray(read, dtype=bool)[..., None]
    count = read.sum(axis=1)
    if mode == "attention":
        scores = np.where(read, outputs @ query[:, None], -np.inf)
        top = np.max(scores, axis=1, keepdims=True)
        weights = np.where(read, np.exp(scores - np.where(np.isfinite(top), top, 0.0)), 0.0)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), np.finfo(float).tiny)
        return (outputs * weights).sum(axis=1)
    mean = np.where(read, outputs, 0.0).sum(axis=1) / np.maximum(count, 1)
    if mode == "mean":
        return mean
    largest = np.where(count > 0, np.max(np.where(read, outputs, -np.inf), axis=1), 0.0)
    return largest if mode == "max" else np.concatenate([largest, mean], axis=-1)


def pair_rows(tokens: np.ndarray, buckets: int, words: int) -> tuple[np.ndarray, np.ndarray]:
    """`rnn_cli.pairs.WordPairs`' row of each step's word pair, and whether the step reads one: both
    (batch, time)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    previous = np.pad(tokens[:, :-1], [(0, 0), (1, 0)])
    return (previous * words + tokens) % buckets, (previous != 0) & (tokens != 0)


def apply_head(head, states: np.ndarray) -> np.ndarray:
    """The Dense head on states of any leading shape: p = sigmoid(w @ h + b) for one output,
    softmax(W @ h + b) over the classes for several."""
    kernel = np.asarray(head.kernel, dtype=np.float64)
    bias = np.asarray(head.bias, dtype=np.float64)
    if kernel.shape[1] == 1:
        return sigmoid(states @ kernel[:, 0] + bias[0])
    logits = states @ kernel + bias
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)
