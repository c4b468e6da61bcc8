"""What run folders say about themselves, as rows: one run, or a seed group's mean and spread."""

from __future__ import annotations

import statistics
from pathlib import Path

from rnn_cli import checkpoints, runs


def run_row(run_dir: Path, config: dict | None = None) -> dict:
    """What one run folder says about itself: config name, size, best epoch, test accuracy, speed.
    `config`: the run's config.yaml when already read."""
    record = runs.read_mapping(run_dir / runs.RUN_RECORD)
    history = checkpoints.read_history(run_dir)
    best = checkpoints.best_row(history)
    metrics = runs.read_mapping(run_dir / runs.METRICS) if (run_dir / runs.METRICS).exists() else {}
    # Epochs that began a process (the first, and the first after each resume) include tracing and
    # compiling: left out when others remain (runs older than that record keep them all).
    timings = record.get("timings", {})
    warmup = set(timings.get("warmup_epochs", []))
    seconds = ([row["seconds"] for row in history if row["epoch"] not in warmup]
               or [row["seconds"] for row in history])
    return {
        "name": runs.config_name(run_dir, config), "data": data_label(config or runs.read_run_config(run_dir)),
        "runs": 1, "parameters": record.get("parameters"),
        # A baseline (rnn baseline) has no epochs: its validation accuracy is the one its C was chosen by.
        "epochs": len(history), "best_val_accuracy": best["val_accuracy"] if best else record.get("val_accuracy"),
        "best_epoch": best["epoch"] if best else None, "test_accuracy": metrics.get("accuracy"),
        "test_macro_f1": metrics.get("macro_f1"), "classes": len(runs.read_classes(run_dir)),
        # The median also skips any one-off stall.
        "seconds_per_epoch": statistics.median(seconds) if seconds else None,
        "train_minutes": timings.get("train_seconds", 0.0) / 60,
        "device": record.get("device"), "backend": record.get("backend") or "tensorflow",
        "status": record.get("status"), "path": str(run_dir),
    }


def data_label(config: dict) -> str:
    """What a run trained on, as a person tells runs apart: the source and the file's name ("csv tickets.csv",
    "aclimdb aclImdb_v1.tar.gz", "keras"), and the --limit if one was set."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    source, path, limit = data.get("source", "keras"), data.get("path"), data.get("limit")
    label = f"{source} {Path(str(path)).name}" if path else str(source)
    return label + (f", limit {limit}" if limit else "")


def group_row(members: list[dict], path: Path) -> dict:
    """Seed runs of one config as one row: means, with the standard deviation beside each."""
    def mean(key):
        values = [m[key] for m in members if m[key] is not None]
        return statistics.mean(values) if values else None

    def spread(key):
        values = [m[key] for m in members if m[key] is not None]
        return statistics.stdev(values) if len(values) > 1 else 0.0

    first = members[0]
    return {
        "name": first["name"], "data": ", ".join(dict.fromkeys(m["data"] for m in members)),
        "runs": len(members), "parameters": first["parameters"],
        "epochs": mean("epochs"), "best_val_accuracy": mean("best_val_accuracy"),
        # Each seed's own best epoch: their mean would name an epoch no run had.
        "best_val_accuracy_std": spread("best_val_accuracy"), "best_epoch": [m["best_epoch"] for m in members],
        "test_accuracy": mean("test_accuracy"), "test_accuracy_std": spread("test_accuracy"),
        # The group as one model (the mean of its runs' probabilities), scored on the same test split at the end of
        # `rnn train --seeds`.
        "ensemble_test_accuracy": ensemble_accuracy(path),
        "test_macro_f1": mean("test_macro_f1"), "test_macro_f1_std": spread("test_macro_f1"),
        "classes": first["classes"],
        "seconds_per_epoch": mean("seconds_per_epoch"), "train_minutes": mean("train_minutes"),
        "device": ", ".join(sorted({str(m["device"]) for m in members})),
        "backend": ", ".join(sorted({str(m["backend"]) for m in members})),
        "status": ", ".join(sorted({str(m["status"]) for m in members})), "path": str(path),
        "members": members,
    }


def ensemble_accuracy(group_dir: Path) -> float | None:
    """The test accuracy of a seed group as one model, from its metrics.json; None before it was scored."""
    path = group_dir / runs.METRICS
    return runs.read_mapping(path).get("accuracy") if path.exists() else None
