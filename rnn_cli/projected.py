"""SimpleRNN with its input projection out of the loop: the same layer, a quarter less time per step.

Keras' SimpleRNN multiplies each step's input by the kernel inside its loop, `h_t = tanh(x_t W + b + h_(t-1)
U)`: a small matrix product per time step, each paying the loop's per-iteration cost. `x_t W + b` does not
depend on the state, so for a whole batch it is one product before the loop (what cuDNN does for LSTM and
GRU), and the loop keeps only `h_(t-1) U`. Measured on this 2-core CPU, TensorFlow with XLA, SimpleRNN(32)
under a mask, batch 32 (`python benchmarks/profile_step.py --model simple_rnn`, docs/performance.md): about
a quarter less per time step.

`faster_loops(model)` gives every SimpleRNN of a model (Bidirectional's copies too) this loop, on the layer
itself: the saved model keeps Keras' own SimpleRNN, so a model.keras loads with Keras alone and computes the
same (to float32 rounding); rnn-cli gives every model it builds or loads the faster loop. The dropout masks
are drawn as Keras' cell draws them (input then recurrent, once per batch), so a seed gives the same masks.
On TensorFlow a training step runs the recurrence with its gradient written out, and a forward pass under a
mask runs it only over the steps some row of the batch keeps (rnn_cli/recurrence.py).

`faster_loops` also gives every LSTM and GRU, on TensorFlow, Keras' loop run only over the steps some row of
the batch keeps, where cuDNN does not run it (rnn_cli/recurrence.py); their training step there runs with its
gradient written out (`written_gated`). Where every loop of a model skips the padding so (`skips_padding`),
validation pads its batches to one length: one shape to compile.
"""

from __future__ import annotations

import types

import keras
from keras import ops
from keras.src import backend  # its rnn(): the loop every Keras recurrent layer runs (not in the public API)


def faster_loops(model: keras.Model) -> keras.Model:
    """`model` with every SimpleRNN layer's loop replaced by `projected_loop`, and on TensorFlow every LSTM's and
    GRU's by `spanned_loop`; returns the model."""
    for layer in _recurrent(model.layers):
        if isinstance(layer, keras.layers.SimpleRNN):
            layer.inner_loop = types.MethodType(projected_loop, layer)
        elif isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)) and keras.backend.backend() == "tensorflow":
            layer.inner_loop = types.MethodType(spanned_loop, layer)
    return model


def _recurrent(layers):
    """Every recurrent layer among `layers`, inside Bidirectional wrappers and seed groups' members too."""
    for layer in layers:
        if isinstance(layer, keras.layers.Bidirectional):
            yield from _recurrent([layer.forward_layer, layer.backward_layer])
        elif isinstance(layer, keras.layers.RNN):
            yield layer
        elif isinstance(layer, keras.Model):  # a seed group's members
            yield from _recurrent(layer.layers)


def written_gradient(layer) -> bool:
    """Whether a training step runs `layer`'s loop with its gradient written out (rnn_cli/recurrence.py):
    on TensorFlow, for the tanh SimpleRNN of every shipped config, when Keras does not unroll it."""
    return (keras.backend.backend() == "tensorflow" and not layer.unroll
            and layer.cell.activation is keras.activations.tanh)


def written_gated(layer) -> bool:
    """Whether a training step runs `layer`'s loop, an LSTM's or GRU's, with its gradient written out
    (rnn_cli/recurrence.py): on TensorFlow, with Keras' default activations and fused gates (implementation 2: no
    recurrent dropout), a GRU's reset gate after its product (Keras' default), in float32, not unrolled; the
    shipped LSTM's and GRUs'."""
    cell = layer.cell
    return (keras.backend.backend() == "tensorflow" and isinstance(layer, (keras.layers.LSTM, keras.layers.GRU))
            and not layer.unroll and cell.implementation == 2 and getattr(cell, "reset_after", True)
            and cell.activation is keras.activations.tanh and cell.recurrent_activation is keras.activations.sigmoid
            and layer.compute_dtype == "float32")


def projected_loop(self, sequences, initial_state, mask, training=False):
    """`keras.layers.RNN.inner_loop` for a SimpleRNN: x W + b for every step at once, then the recurrence."""
    cell = self.cell
    state = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
    input_mask = cell.get_dropout_mask(sequences[:, 0])  # Keras' cell draws these at its first step
    state_mask = cell.get_recurrent_dropout_mask(state)
    if training:
        sequences = _dropped(sequences, input_mask)
    projected = ops.matmul(sequences, cell.kernel)
    if cell.bias is not None:
        projected = ops.add(projected, cell.bias)
    if training and written_gradient(self):
        from rnn_cli.recurrence import simple_rnn_loop  # TensorFlow's: imported only on that backend

        return simple_rnn_loop(projected, cell.recurrent_kernel, state, mask, state_mask,
                               go_backwards=self.go_backwards, zero_output_for_mask=self.zero_output_for_mask,
                               return_sequences=self.return_sequences)

    def step(inputs, states):
        previous = states[0]
        if training and state_mask is not None:
            previous = previous * state_mask
        output = inputs + ops.matmul(previous, cell.recurrent_kernel)
        if cell.activation is not None:
            output = cell.activation(output)
        return output, [output]

    if not training and _spans(self, mask):  # a training step keeps the fixed length, cheaper per step for SimpleRNN
        from rnn_cli.recurrence import masked_rnn

        return masked_rnn(step, projected, [state], _first(mask), go_backwards=self.go_backwards,
                          zero_output_for_mask=self.zero_output_for_mask, return_all_outputs=self.return_sequences)
    return backend.rnn(step, projected, [state], go_backwards=self.go_backwards, mask=mask, unroll=self.unroll,
                       input_length=sequences.shape[1], zero_output_for_mask=self.zero_output_for_mask,
                       return_all_outputs=self.return_sequences)


def spanned_loop(self, sequences, initial_state, mask, training=False):
    """`keras.layers.RNN.inner_loop` for an LSTM or GRU on TensorFlow: Keras' loop over the span of steps some row
    keeps (rnn_cli/recurrence.py), or Keras' own where cuDNN may run it (a GPU), or with no mask to span."""
    if not _spans(self, mask):
        return type(self).inner_loop(self, sequences, initial_state, mask, training=training)
    from rnn_cli.recurrence import masked_rnn, written_rnn

    initial_state = initial_state if keras.tree.is_nested(initial_state) else [initial_state]
    if training and written_gated(self):
        # Keras' LSTM and GRU cells drop their inputs for a rate strictly between 0 and 1
        sequences = _dropped(sequences, self.cell.get_dropout_mask(sequences[:, 0]) if 0 < self.cell.dropout < 1
                             else None)
        return written_rnn(self.cell, sequences, initial_state, _first(mask), gru=isinstance(self, keras.layers.GRU),
                           go_backwards=self.go_backwards, zero_output_for_mask=self.zero_output_for_mask,
                           return_all_outputs=self.return_sequences)

    def step(inputs, states):
        output, new_states = self.cell(inputs, states, training=training)
        return output, new_states if keras.tree.is_nested(new_states) else [new_states]

    return masked_rnn(step, sequences, initial_state, _first(mask), go_backwards=self.go_backwards,
                      zero_output_for_mask=self.zero_output_for_mask, return_all_outputs=self.return_sequences)


def _dropped(sequences, input_mask):
    """`sequences` with a cell's input dropout mask (None: no dropout) applied at every step, as the cell applies
    the one mask it draws for a batch."""
    return sequences if input_mask is None else sequences * ops.expand_dims(input_mask, 1)


def skips_padding(model: keras.Model, training: bool = False) -> bool:
    """Whether every recurrent layer of `model`, in a forward pass (or a `training` step), loops only over the span
    of steps some row of the batch keeps, so that padding a batch further costs it little: on TensorFlow, under a
    mask, where cuDNN does not run the loop; in training an LSTM or GRU (SimpleRNN's training loop runs every
    step). Validation then pads every batch to one length, and training takes wider buckets: fewer shapes."""
    layers = list(_recurrent(model.layers))
    return bool(layers) and all(_spans(layer, True) and not (training and _loop(layer) is projected_loop)
                                for layer in layers)


def _spans(layer, mask) -> bool:
    """Whether `layer`'s loop runs over the span alone (given a `mask`): `faster_loops`' loop on TensorFlow,
    not unrolled, and for an LSTM or GRU not where cuDNN may run it."""
    loop = _loop(layer)
    if mask is None or layer.unroll or keras.backend.backend() != "tensorflow" or loop not in (projected_loop,
                                                                                               spanned_loop):
        return False
    if loop is projected_loop:
        return True
    import tensorflow as tf

    return not (layer.use_cudnn is True or (layer.use_cudnn == "auto" and tf.config.list_logical_devices("GPU")))


def _loop(layer):
    """The function `layer` loops with: one of this module's, or Keras' own."""
    return getattr(layer.inner_loop, "__func__", None)


def _first(mask):
    """The mask of the sequence: Keras passes a layer's masks as a list at times."""
    return mask[0] if keras.tree.is_nested(mask) else mask
