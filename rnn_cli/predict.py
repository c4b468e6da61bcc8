"""Score new reviews with a trained run, encoding them exactly as training did."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnn_cli import loading
from rnn_cli.corpus import Reviews
from rnn_cli.inference import INFERENCE_BATCH_SIZE, predict_few
from rnn_cli.model import THRESHOLD


def predict_texts(run: Path | loading.Trained, texts: list[str],
                  batch_size: int = INFERENCE_BATCH_SIZE) -> list[dict]:
    """A label per review and its probability: for two classes the probability of the second
    ("positive"), for more the likeliest class's (and every class's, `probabilities`).

    `run`: a run folder, or a run loaded already (`loading.Trained`: rnn serve loads it once). Empty
    reviews and reviews with no word in the vocabulary get probability None and a note: the model
    would only be scoring padding. `truncated` says whether maxlen cut the review.
    """
    trained = loading.Trained.of(run)
    config, classes, model = trained.config, trained.classes, trained.model
    encoded = [trained.vocabulary.encode(text) for text in texts]
    results = [{"text": text, "words": len(ids) - 1, "known_words": known, "truncated": len(ids) > config.data.maxlen,
                "probability": None, "label": None, "note": None} for text, (ids, known) in zip(texts, encoded)]
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
        probabilities = predict_few(model, reviews, config.data, batch_size)
        for i, p in zip(scorable, probabilities):
            if np.ndim(p) == 0:  # two classes: the probability of the second
                results[i]["probability"] = float(p)
                results[i]["label"] = classes[1] if p >= THRESHOLD else classes[0]
            else:  # the likeliest class and its probability, and every class's
                results[i]["probability"] = float(p.max())
                results[i]["label"] = classes[int(p.argmax())]
                results[i]["probabilities"] = {name: float(q) for name, q in zip(classes, p)}
    return results


def result_line(result: dict) -> str:
    """`rnn predict`'s line for one review: its probability and label, the review's start, a note."""
    score = "     n/a" if result["probability"] is None else f"{result['probability']:.4f} {result['label']}"
    preview = result["text"] if len(result["text"]) <= 60 else result["text"][:57] + "..."
    note = f"  ({result['note']})" if result["note"] else ""
    return f"{score:<17} {preview}{note}"
