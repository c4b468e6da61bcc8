"""`rnn baseline`: the strong linear model on exactly the data and split a config names, as a run folder.

Logistic regression on TF-IDF word unigrams and bigrams (scikit-learn, the baseline extra: its solvers,
not hand-written ones), the regularisation C chosen on the validation split, the test split scored once.
With two classes each n-gram's weight is scaled by its naive-Bayes log-count ratio (NBSVM, Wang & Manning
2012, here with logistic regression): chosen on IMDB's validation split over the plain TF-IDF model and over
trigrams (docs/results.md).
The words are the run's tokeniser's, every word of the training split kept (a linear model pays little
per word, so the config's num_words does not cap it). A recurrent model worth its cost beats this.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np

from rnn_cli import runs
from rnn_cli.card import CARD, baseline_card_text
from rnn_cli.config import MAX_INT, Config, dump_config
from rnn_cli.corpus import Reviews
from rnn_cli.data import load_data
from rnn_cli.errors import require_extra
from rnn_cli.files import write_atomic, write_json
from rnn_cli.metrics import THRESHOLD, score
from rnn_cli.plots import confusion_figure

C_CHOICES = (4.0, 16.0, 64.0)  # inverse regularisation strengths tried, the best on validation kept
MIN_COUNT = 2  # an n-gram in fewer training reviews than this is left out (most bigrams are seen once)
MODEL = "logistic regression on TF-IDF word unigrams and bigrams"
NB_MODEL = f"{MODEL}, each scaled by its naive-Bayes log-count ratio (NBSVM)"


def baseline_run(config: Config, run_dir: Path | None = None, echo: Callable[[str], None] = print) -> Path:
    """`rnn baseline`: the baseline of `config`'s data in a new run folder (`run_dir`, else runs/<name>-baseline-<time>)
    named after the config; a failed or stopped baseline leaves no half-made folder."""
    config = dataclasses.replace(config, name=f"{config.name}-baseline")
    run_dir = runs.claim_run_dir(run_dir) if run_dir else runs.new_run_dir(config.name)
    try:
        echo(f"run folder: {run_dir}")
        train_baseline(config, run_dir, echo=echo)
    except BaseException:
        runs.unlock(run_dir)
        runs.remove_run(run_dir)
        raise
    runs.unlock(run_dir)
    return run_dir


def train_baseline(config: Config, run_dir: Path, echo: Callable[[str], None] = print) -> dict:
    """Fit the baseline on `config`'s data and split into `run_dir`; its test metrics (also in metrics.json)."""
    started = time.perf_counter()
    fitted = fit_baseline(config, echo)
    splits, best, val_accuracy = fitted.splits, fitted.best, fitted.val_accuracy
    probabilities = fitted.probabilities("test")
    metrics = score(splits.test.labels, probabilities, splits.classes)
    seconds = time.perf_counter() - started
    write_run(run_dir, config, splits.classes, metrics, {
        "kind": "baseline", "model": fitted.name, "C": best, "val_accuracy": val_accuracy[best],
        "val_accuracy_by_C": {f"{c:g}": a for c, a in val_accuracy.items()},
        "parameters": int(np.prod(fitted.models[best].coef_.shape) + fitted.models[best].intercept_.size),
        "data": {"source": splits.source, "sizes": {"train": len(splits.train), "val": len(splits.val),
                                                    "test": len(splits.test)}},
        "timings": {"train_seconds": seconds}})
    confusion_figure(splits.test.labels, probabilities, splits.classes, run_dir / runs.CONFUSION, THRESHOLD)
    write_atomic(run_dir / CARD, baseline_card_text(run_dir))
    echo(f"test accuracy {metrics['accuracy']:.4f}  (C {best:g} chosen on validation, {seconds:.0f} s)  "
         f"run: {run_dir}")
    return metrics


@dataclasses.dataclass(frozen=True)
class Fitted:
    """The baseline fitted on a config's data: the splits, each split's features, a model per C, and the C
    validation chose."""

    splits: object  # data.Splits
    features: dict  # split name -> sparse (reviews, n-grams) matrix
    name: str
    models: dict  # C -> LogisticRegression
    val_accuracy: dict  # C -> validation accuracy
    best: float

    def probabilities(self, split: str) -> np.ndarray:
        """The chosen model's probabilities for `split`: of the second class for two, (n, classes) for more."""
        p = self.models[self.best].predict_proba(self.features[split])
        return p[:, 1] if len(self.splits.classes) == 2 else p


def fit_baseline(config: Config, echo: Callable[[str], None] = print) -> Fitted:
    """The n-gram features of `config`'s data and a logistic regression per C, the best on validation chosen."""
    require_extra("baseline", "sklearn")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    splits = load_data(dataclasses.replace(config.data, num_words=MAX_INT))  # every word of the training split
    texts = {name: documents(getattr(splits, name)) for name in ("train", "val", "test")}
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), min_df=MIN_COUNT, sublinear_tf=True,
                                 dtype=np.float32)
    features = {"train": vectorizer.fit_transform(texts["train"])}
    features.update({name: vectorizer.transform(texts[name]) for name in ("val", "test")})
    name = MODEL
    if len(splits.classes) == 2:
        ratio = log_count_ratio(features["train"], splits.train.labels)
        features = {split: matrix.multiply(ratio).tocsr() for split, matrix in features.items()}
        name = NB_MODEL
    echo(f"baseline: {name}, {features['train'].shape[1]:,} n-grams from {len(texts['train']):,} training reviews")
    models, val_accuracy = {}, {}
    for c in C_CHOICES:
        models[c] = LogisticRegression(C=c, max_iter=1000).fit(features["train"], splits.train.labels)
        val_accuracy[c] = float((models[c].predict(features["val"]) == splits.val.labels).mean())
        echo(f"  C {c:g}: val_accuracy {val_accuracy[c]:.4f}")
    best = max(C_CHOICES, key=lambda c: (val_accuracy[c], -c))
    return Fitted(splits, features, name, models, val_accuracy, best)


def log_count_ratio(features, labels: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Each feature's log of how much likelier it is in the second class than in the first (smoothed by
    `alpha`): the naive-Bayes weight NBSVM scales it by."""
    positive = alpha + np.asarray(features[labels == 1].sum(axis=0)).ravel()
    negative = alpha + np.asarray(features[labels == 0].sum(axis=0)).ravel()
    return np.log((positive / positive.sum()) / (negative / negative.sum())).astype(np.float32)


def documents(reviews: Reviews) -> list[str]:
    """Each review as its word ids joined by spaces: the tokeniser's words, as the vectorizer reads them."""
    ids = reviews.tokens.astype(str)
    return [" ".join(ids[start:end]) for start, end in zip(reviews.offsets[:-1], reviews.offsets[1:])]


def write_run(run_dir: Path, config: Config, classes: tuple[str, ...], metrics: dict, record: dict) -> None:
    """The run folder's files, as rnn compare reads them: the config, the classes, the test metrics, run.json."""
    write_atomic(run_dir / runs.CONFIG, dump_config(config))
    write_json(run_dir / runs.CLASSES, {"classes": list(classes)})
    write_json(run_dir / runs.METRICS, metrics)
    write_json(run_dir / runs.RUN_RECORD, {"status": "finished", "device": "cpu", "backend": "scikit-learn",
                                           **record})
