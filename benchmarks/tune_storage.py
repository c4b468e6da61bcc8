"""Which embedded storage for `rnn tune`: Optuna's journal file or SQLite, under several workers at once.

Each worker is a process running `study.optimize` on one shared study with a trivial objective (the
trial's bookkeeping is all the work), for --seconds: the storage is then the bottleneck, as it would
be for many workers with fast trials. Reported per storage: trials finished per second (all workers),
and workers that failed (SQLite's "database is locked" ends a worker).

    python benchmarks/tune_storage.py --workers 4 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path


def storage(kind: str, folder: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if kind == "journal":
        return JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    return optuna.storages.RDBStorage(f"sqlite:///{folder / 'study.db'}")


def worker(kind: str, folder: str, seconds: float, queue) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = optuna.load_study(study_name="bench", storage=storage(kind, Path(folder)))
        study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2 + t.suggest_int("n", 1, 8), timeout=seconds)
        queue.put(("ok", None))
    except Exception as err:  # noqa: BLE001 - counted and reported
        queue.put(("failed", f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"))


def measure(kind: str, workers: int, seconds: float) -> dict:
    import optuna

    with tempfile.TemporaryDirectory() as folder:
        optuna.create_study(study_name="bench", storage=storage(kind, Path(folder)))
        queue = multiprocessing.get_context("spawn").Queue()
        processes = [multiprocessing.get_context("spawn").Process(target=worker, args=(kind, folder, seconds, queue))
                     for _ in range(workers)]
        started = time.perf_counter()
        for process in processes:
            process.start()
        outcomes = [queue.get() for _ in processes]
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - started
        finished = len(optuna.load_study(study_name="bench", storage=storage(kind, Path(folder))).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,)))
    errors = [message for state, message in outcomes if state == "failed"]
    return {"storage": kind, "workers": workers, "trials": finished, "trials_per_second": finished / elapsed,
            "failed_workers": len(errors), "errors": sorted(set(errors))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    for kind in ("journal", "sqlite"):
        print(json.dumps(measure(kind, args.workers, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
