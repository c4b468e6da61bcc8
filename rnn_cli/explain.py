"""Look inside a trained run: how the score moves word by word (`rnn explain`), and what each layer
computes (`rnn inspect`). Both read the model through the NumPy reference, not through Keras."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from rnn_cli import loading
from rnn_cli.config import DataConfig
from rnn_cli.corpus import Reviews
from rnn_cli.encoding import OOV, batch_ids, padding_side, tokenize
from rnn_cli.errors import UserError
from rnn_cli.ensemble import members
from rnn_cli.model import THRESHOLD, masks_padding
from rnn_cli.reference import EQUATIONS, GATES, POOLED, RECURRENT, apply_head, forward

START_WORD = "<start>"


@dataclass(frozen=True)
class Explanation:
    """The probability of a class ("positive" unless asked) after each word the model reads."""

    words: list[str]  # as read: START_WORD first, unless maxlen truncation cut it
    known: list[bool]  # False: not in the vocabulary, read as the unknown-word token
    scores: np.ndarray  # probability after each of `words`
    baseline: float  # the score before any word: the head on the zero state
    probability: float  # the model's prediction for the whole review (what `rnn predict` says)
    dropped: int  # words maxlen cut off (the start token counts as one)
    maxlen: int
    truncating: str  # "pre": maxlen kept the review's last words; "post": its first
    shown: str  # what the scores are, in a sentence
    traced: str = "positive"  # the class whose probability the scores are
    label: str = ""  # the class the model gives the review
    asked: bool = False  # traced is not simply the second of two classes (a --class, or a softmax's)

    @property
    def changes(self) -> np.ndarray:
        """How much each word moved the score."""
        return np.diff(self.scores, prepend=self.baseline)

    def movers(self, top: int) -> list[int]:
        """Positions of the `top` words that moved the score most, largest first."""
        return [int(i) for i in np.argsort(-np.abs(self.changes), kind="stable")[:top]]

    def as_dict(self, top: int) -> dict:
        return {"probability": self.probability, "class": self.traced, "label": self.label,
                "shown": self.shown, "dropped": self.dropped,
                "tokens": [{"word": w, "known": k, "score": float(s), "change": float(c)}
                           for w, k, s, c in zip(self.words, self.known, self.scores, self.changes)],
                "movers": self.movers(top)}


def explain_review(run: Path | loading.Trained, text: str, traced: str | None = None) -> Explanation:
    """The score of `text` after every word, from the run's model through the NumPy reference.

    For a model that reads left to right, the score after a word is the Dense head applied to the
    last recurrent layer's running state there. A bidirectional layer has no such state (its
    backward half has read the review from the end), so there the score after a word is the
    model's prediction for the review cut off after that word. The score is the probability of
    `traced` (default: the second of two classes, "positive"; of more, the one the model gives).
    `run`: a run folder, or a run loaded already (`loading.Trained`); a seed group's scores are the mean of its
    runs'.
    """
    trained = loading.Trained.of(run)
    config, classes, model = trained.config, trained.classes, trained.model
    if traced is not None and traced not in classes:
        raise UserError(f"--class {traced!r}: not a class of this run ({', '.join(classes)})")
    ids, known_count = trained.vocabulary.encode(text)
    if known_count == 0:
        what = "is empty" if len(ids) == 1 else "has no word in the model's vocabulary"
        raise UserError(f"the review {what}: nothing to explain")
    data = config.data
    # What the model reads: maxlen tokens from the end (truncating: pre) or from the start.
    kept = slice(-data.maxlen, None) if data.truncating == "pre" else slice(0, data.maxlen)
    words = [START_WORD, *tokenize(text)][kept]
    # A seed group's trace is the mean of its runs' (its model's output is the mean of theirs).
    traces = [model_trace(member, ids[kept], data) for member in members(model)]
    baseline, scores, final = (np.mean([trace[i] for trace in traces], axis=0) for i in range(3))
    shown = traces[0][3] + (f"; the mean of the group's {len(traces)} runs' scores" if len(traces) > 1 else "")
    predicted = classes[int(np.argmax(final))] if np.ndim(final) else classes[int(final >= THRESHOLD)]
    if np.ndim(final):  # a softmax head: trace one class's column
        column = classes.index(traced or predicted)
        baseline, scores, probability = float(baseline[column]), scores[:, column], float(final[column])
    elif traced == classes[0]:  # a sigmoid head gives the second class's probability
        baseline, scores, probability = 1 - float(baseline), 1 - scores, 1 - float(final)
    else:
        baseline, probability = float(baseline), float(final)
    return Explanation(words=words, known=[bool(i != OOV) for i in ids[kept]], scores=scores, baseline=baseline,
                       probability=probability, dropped=max(len(ids) - data.maxlen, 0), maxlen=data.maxlen,
                       truncating=data.truncating, shown=shown,
                       traced=(traced or predicted) if np.ndim(final) else (traced or classes[1]), label=predicted,
                       asked=bool(np.ndim(final)) or traced not in (None, classes[1]))


def model_trace(model: keras.Model, ids: np.ndarray, data: DataConfig) -> tuple:
    """One model's scores of `ids` (before any word, after each, the prediction) and what they are, in words."""
    recurrent = [layer for layer in model.layers if type(layer).__name__ in RECURRENT]
    bidirectional = [layer.name for layer in recurrent if type(layer).__name__ == "Bidirectional"]
    pooling = next((layer.mode for layer in model.layers if type(layer).__name__ == "Pooling"), None)
    if bidirectional:
        shown = (f"{bidirectional[0]} also reads the review backwards, so no state sums up 'the review so far'; "
                 "each score is the model's prediction for the review cut off after that word")
    elif pooling:
        shown = (f"the head reads the {pooling} pooling of {recurrent[-1].name}'s outputs over the words read so "
                 "far: each score is the model's prediction for the review cut off after that word")
    else:
        shown = (f"each score is the Dense head applied to {recurrent[-1].name}'s running state "
                 "after reading the review up to that word")
        if not masks_padding(model) and padding_side(data, masked=False) == "post":
            shown += "; the model then reads padding up to maxlen, which the probability includes"
    score = prefix_scores if bidirectional or pooling else running_scores
    return (*score(model, ids, data), shown)


def running_scores(model: keras.Model, ids: np.ndarray, data: DataConfig) -> tuple[np.ndarray, ...]:
    """The head on the last layer's state after each token: (before any, after each, the prediction),
    each a probability, or a row of the classes' for a softmax head."""
    x = batch_ids(Reviews.from_lists([ids], [0]), data, masks_padding(model))
    trace = forward(model, x)
    # Unmasked and pre-padded, the review's words are the last steps, after the padding.
    start = x.shape[1] - len(ids) if padding_side(data, masks_padding(model)) == "pre" else 0
    states = list(trace.sequences.values())[-1][0]
    head = model.get_layer("head")
    before = states[start - 1] if start else np.zeros(states.shape[1])
    return apply_head(head, before), apply_head(head, states[start:start + len(ids)]), trace.probabilities[0]


def prefix_scores(model: keras.Model, ids: np.ndarray, data: DataConfig) -> tuple[np.ndarray, ...]:
    """The prediction for every prefix, the empty one first, in one batch."""
    prefixes = Reviews.from_lists([ids[:k] for k in range(len(ids) + 1)], np.zeros(len(ids) + 1))
    scores = forward(model, batch_ids(prefixes, data, masks_padding(model))).probabilities
    return scores[0], scores[1:], scores[-1]


def explanation_lines(explanation: Explanation, top: int) -> list[str]:
    """The review word by word with its running score, then the words that moved it most."""
    e = explanation
    head = (f"probability of {e.traced} {e.probability:.4f} (the model's class: {e.label})" if e.asked
            else f"probability {e.probability:.4f} {e.label}")
    lines = [head, f"shown: {e.shown}"]
    if e.dropped:
        side = "last" if e.truncating == "pre" else "first"
        lines.append(f"the review is longer than maxlen {e.maxlen}: the model reads its {side} {e.maxlen} tokens, "
                     f"{e.dropped} are cut")
    lines.append(f"{'#':>4}  {'word':<20} {'score':>6}  {'change':>7}")
    lines.append(f"{'':>4}  {'(before any word)':<20} {e.baseline:6.4f}")
    for i, (word, known, score, change) in enumerate(zip(e.words, e.known, e.scores, e.changes)):
        note = "  (unknown word)" if not known else ""
        lines.append(f"{i:>4}  {word:<20} {score:6.4f}  {change:+7.4f}{note}")
    lines.append("moved the score most:")
    lines += [f"  {e.changes[i]:+.4f}  {e.words[i]} (#{i})" for i in e.movers(top)]
    return lines


def describe_layers(run_dir: Path) -> list[str]:
    """Layer by layer: weight shapes, parameter counts and the update equation."""
    models = members(loading.load_trained(run_dir))
    lines = [f"a seed group of {len(models)} runs with the same layers, whose output is the mean of their "
             f"probabilities; {models[0].name}'s:"] if len(models) > 1 else []
    model = models[0]
    pooled = False
    for layer in model.layers:
        if type(layer).__name__ == "Pooling":
            pooled = True
            lines.append(f"{layer.name}: {kind(layer)}, {layer.count_params():,} parameters")
            lines += [f"  {w.name:<17} {str(tuple(w.shape)):<12} q: scores each step's output" for w in layer.weights]
            lines += [f"  {line}" for line in POOLED[layer.mode]]
            lines.append("  over the steps that hold a word: padding never enters")
            continue
        if type(layer).__name__ in ("Dropout", "SpatialDropout1D"):
            lines.append(f"{layer.name}: {kind(layer)}, while training only, nothing at inference")
            continue
        if not layer.weights:
            continue
        lines.append(f"{layer.name}: {kind(layer)}, {layer.count_params():,} parameters")
        cell_layer = layer.forward_layer if type(layer).__name__ == "Bidirectional" else layer
        for weight in cell_layer.weights:
            lines.append(f"  {weight.name:<17} {str(tuple(weight.shape)):<12} {meaning(weight, cell_layer)}")
        if cell_layer is not layer:
            lines.append(f"  (and the same again for the backward copy; outputs merged by {layer.merge_mode})")
        equations = EQUATIONS[type(cell_layer).__name__]
        if pooled and type(layer).__name__ == "Dense":
            equations = [line.replace("h_T", "v").replace("the last state", "the pooled v") for line in equations]
        lines += [f"  {line}" for line in equations]
        if getattr(layer, "mask_zero", False):
            lines.append("  token 0 is padding: masked, the recurrent layers skip it and keep their state")
    trained = sum(layer.count_params() for layer in model.layers)
    lines.append(f"total: {trained:,} parameters")
    return lines


def kind(layer) -> str:
    """`LSTM(32)`, `Bidirectional(GRU(64))`, `Embedding(10000, 32)`, `Dense(1, sigmoid)`, `Pooling(max)`."""
    describe = KINDS.get(type(layer).__name__)
    return describe(layer) if describe else f"{type(layer).__name__}({layer.units})"


KINDS = {
    "Bidirectional": lambda layer: f"Bidirectional({kind(layer.forward_layer)})",
    "Embedding": lambda layer: f"Embedding({layer.input_dim}, {layer.output_dim})",
    "Dense": lambda layer: f"Dense({layer.units}, {layer.activation.__name__})",
    "Pooling": lambda layer: f"Pooling({layer.mode})",
    "WordPairs": lambda layer: f"WordPairs({layer.buckets}, {layer.output_dim})",
    "Dropout": lambda layer: f"Dropout({layer.rate}, whole words)",
    "SpatialDropout1D": lambda layer: f"SpatialDropout1D({layer.rate}, whole channels)",
}


def meaning(weight, layer) -> str:
    """What a weight array is in the equations."""
    short = weight.name
    gates = GATES.get(type(layer).__name__, "")
    blocks = f", blocks {gates} side by side" if gates else ""
    if type(layer).__name__ == "WordPairs":
        return "P: one row per bucket of word pairs"
    return {"embeddings": "E: one row per token id",
            "kernel": ("w" if type(layer).__name__ == "Dense" else f"W = kernel.T{blocks}"),
            "recurrent_kernel": f"U = recurrent_kernel.T{blocks}",
            "bias": ("b: row 0 with W, row 1 (b') with U" if len(weight.shape) == 2 else f"b{blocks}")}.get(short, "")

