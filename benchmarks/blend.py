"""Does a recurrent model add to the linear baseline? A trained run's (or seed group's) probabilities
averaged with `rnn baseline`'s on the run's own data and split, the weight chosen on validation and the
test split scored once, beside each alone:

    python benchmarks/blend.py --run runs/tuned-3 --data ../shared/data/aclImdb_v1_labeled.tar.gz

Two classes only (the baseline's NB scaling and one probability per review).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)  # the recurrent model's share of the average


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a run or seed group folder")
    parser.add_argument("--data", type=Path, required=True, help="its data, as rnn train --data takes it")
    args = parser.parse_args()
    from rnn_cli.loading import Trained, use_backend_of

    use_backend_of(args.run)
    from rnn_cli.baseline import fit_baseline
    from rnn_cli.config import load_config
    from rnn_cli.data import data_overrides, load_data
    from rnn_cli.inference import predict_probabilities

    trained = Trained.load(args.run)
    config = load_config(trained.source / "config.yaml", data_overrides(args.data.resolve(), None))
    splits = load_data(config.data, trained.vocabulary)
    linear = fit_baseline(config, echo=lambda line: None)
    labels = {split: getattr(splits, split).labels for split in ("val", "test")}
    for split in ("val", "test"):  # the same reviews in the same order, whatever the vocabulary
        assert np.array_equal(labels[split], getattr(linear.splits, split).labels)
    recurrent = {split: predict_probabilities(trained.model, getattr(splits, split), config.data)
                 for split in ("val", "test")}

    def accuracy(p: np.ndarray, split: str) -> float:
        return float(((p >= 0.5) == labels[split]).mean())

    blends = {w: {split: w * recurrent[split] + (1 - w) * linear.probabilities(split) for split in ("val", "test")}
              for w in WEIGHTS}
    best = max(WEIGHTS, key=lambda w: accuracy(blends[w]["val"], "val"))
    rows = [("recurrent", recurrent), ("baseline", {s: linear.probabilities(s) for s in ("val", "test")}),
            (f"average, weight {best} (chosen on validation)", blends[best])]
    print(f"{'model':<44} {'val acc':>8} {'test acc':>9}")
    for name, p in rows:
        print(f"{name:<44} {accuracy(p['val'], 'val'):>8.4f} {accuracy(p['test'], 'test'):>9.4f}")
    print("validation by weight: " + ", ".join(f"{w} {accuracy(blends[w]['val'], 'val'):.4f}" for w in WEIGHTS))


if __name__ == "__main__":
    main()
