"""Trials per hour of `rnn tune` with one worker and with several on one PostgreSQL study.

For each worker count, a new study: that many `rnn tune --study NAME --storage URL` processes started
together, each told to start no trial after --minutes; the study's finished trials (complete or
pruned) over the wall time until the last worker ends. Run it on an idle machine; the server is
yours (docs/tuning.md says how to start one on a loopback port):

    python benchmarks/tune_workers.py --storage postgresql://postgres@127.0.0.1:5433/rnn \\
        --config configs/simple_rnn.yaml --space space.yaml --data aclImdb_v1.tar.gz --limit 2000 --minutes 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def measure(args, workers: int) -> dict:
    import optuna

    name = f"workers-{workers}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [sys.executable, "-m", "rnn_cli.cli", "tune", "--config", str(args.config), "--space", str(args.space),
               "--study", name, "--storage", args.storage, "--trials", "100000", "--timeout", str(args.minutes),
               "--device", "cpu", *(["--data", str(args.data)] if args.data else []),
               *(["--limit", str(args.limit)] if args.limit else []), *[f"--set={item}" for item in args.set]]
    started = time.perf_counter()
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for _ in range(workers)]
    errors = [process.communicate()[1] for process in processes]
    elapsed = time.perf_counter() - started
    failed = [err.strip().splitlines()[-1] for process, err in zip(processes, errors) if process.returncode != 0]
    study = optuna.load_study(study_name=name, storage=args.storage)
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    return {"workers": workers, "study": name, "trials": len(finished), "minutes": elapsed / 60,
            "trials_per_hour": len(finished) / (elapsed / 3600), "failed_workers": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--space", type=Path, required=True)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    results = [measure(args, int(n)) for n in args.workers.split(",")]
    for row in results:
        print(json.dumps(row))
    base = results[0]["trials_per_hour"]
    for row in results:
        print(f"{row['workers']} worker(s): {row['trials']} trials in {row['minutes']:.1f} min, "
              f"{row['trials_per_hour']:.0f} trials/hour, {row['trials_per_hour'] / base:.2f}x")


if __name__ == "__main__":
    main()
