"""Scoring a run's test split with the forward pass compiled (XLA) and not, on the run's own backend:
why `rnn eval` and the test evaluation turn XLA off on TensorFlow and keep it on JAX. Each variant
twice, in this order; the first call of each includes tracing or compiling:

    python benchmarks/inference_jit.py --run runs/lstm-...
"""

import argparse
import time
from pathlib import Path

from rnn_cli import loading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder")
    args = parser.parse_args()
    backend = loading.use_backend_of(args.run)

    from rnn_cli.batches import Batches
    from rnn_cli.data import load_data
    from rnn_cli.model import masks_padding

    trained = loading.Trained.load(args.run)
    model, data = trained.model, trained.config.data
    test = load_data(data, trained.vocabulary).test
    for jit in (False, True, False, True):
        model.jit_compile, model.predict_function = jit, None
        batches = Batches(test, 256, data, masked=masks_padding(model), bucketed=data.bucketing)
        started = time.perf_counter()
        model.predict(batches.dataset(), verbose=0)
        print(f"{backend}: {len(test)} reviews, XLA {'on ' if jit else 'off'}: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
