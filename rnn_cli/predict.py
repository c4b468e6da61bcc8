"""Score new reviews with a trained run, encoding them exactly as training did."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from rnn_cli import runs
from rnn_cli.batches import predict_probabilities
from rnn_cli.config import load_config
from rnn_cli.data import Reviews, Vocabulary
from rnn_cli.errors import UserError
from rnn_cli.evaluate import THRESHOLD


def load_trained(run_dir: Path) -> keras.Model:
    """The run's model.keras, or an error that says why a run has none."""
    path = run_dir / runs.MODEL
    if not path.exists():
        hint = (f"it has a checkpoint: finish it with `rnn train --resume --run-dir {run_dir}`"
                if (run_dir / runs.CHECKPOINT).exists() else "train one with `rnn train`")
        raise UserError(f"{run_dir}: no {runs.MODEL} in this run; {hint}")
    return keras.saving.load_model(path)


def predict_texts(run_dir: Path, texts: list[str]) -> list[dict]:
    """Probability of "positive" and a label per review.

    Empty reviews and reviews with no word in the vocabulary get probability None and a note:
    the model would only be scoring padding.
    """
    config = load_config(run_dir / runs.CONFIG)
    vocabulary = Vocabulary.load(run_dir / runs.VOCABULARY)
    model = load_trained(run_dir)
    encoded = [vocabulary.encode(text) for text in texts]
    results = [{"text": text, "words": len(ids) - 1, "known_words": known, "probability": None,
                "label": None, "note": None} for text, (ids, known) in zip(texts, encoded)]
    scorable = [i for i, r in enumerate(results) if r["known_words"] > 0]
    for i, r in enumerate(results):
        if r["words"] == 0:
            r["note"] = "empty review: no words to score"
        elif r["known_words"] == 0:
            r["note"] = "no word of this review is in the model's vocabulary: nothing to score"
        elif r["words"] + 1 > config.data.maxlen:
            # Pre-truncation drops the start token with the review's beginning.
            kept = (f"last {config.data.maxlen}" if config.data.truncating == "pre"
                    else f"first {config.data.maxlen - 1}")
            r["note"] = f"long review: only its {kept} words were read (maxlen {config.data.maxlen})"
    if scorable:
        reviews = Reviews.from_lists([encoded[i][0] for i in scorable], np.zeros(len(scorable)))
        probabilities = predict_probabilities(model, reviews, config.data)
        for i, p in zip(scorable, probabilities):
            results[i]["probability"] = float(p)
            results[i]["label"] = "positive" if p >= THRESHOLD else "negative"
    return results
