"""Runs side by side: one row per run, or per seed group with mean and standard deviation."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from rnn_cli import runs
from rnn_cli.config import flat_settings
from rnn_cli.errors import UserError
from rnn_cli.run_rows import group_row, run_row

COLUMNS = {  # key: heading
    "name": "config", "settings": "settings", "data": "data", "runs": "runs", "parameters": "parameters", "epochs": "epochs",
    "best_val_accuracy": "best val acc", "best_epoch": "best epoch", "test_accuracy": "test acc",
    "ensemble_test_accuracy": "ensemble test acc",
    "test_macro_f1": "test macro-F1",
    "seconds_per_epoch": "s/epoch", "train_minutes": "train min", "device": "device", "path": "run",
}
_MISSING = object()  # a key one config lacks differs from any value another has


def compare(paths: list[Path]) -> list[dict]:
    """Rows for the given run or seed-group folders; none given: everything under runs/.

    A seed group (the folder `rnn train --seeds N` makes) is one row with mean and spread.
    """
    if not paths:
        paths = top_level_runs(runs.RUNS_ROOT)
        if not paths:
            raise UserError(f"no runs under {runs.RUNS_ROOT}/; train one with `rnn train`, or name run folders")
    rows, configs = [], []
    # A study (rnn tune) is its trials, each a run or a seed group.
    paths = [trial for path in paths for trial in (runs.study_trials(path) if (path / runs.STUDY).exists() else [path])]
    for path in paths:
        if (path / runs.SEEDS_SUMMARY).exists():
            members = [_row_and_settings(p) for p in runs.members(path)]
            if members:
                rows.append(group_row([row for row, _ in members], path))
                configs.append(_common([settings for _, settings in members]))
        elif (path / runs.RUN_RECORD).exists():
            row, settings = _row_and_settings(path)
            rows.append(row)
            configs.append(settings)
        else:
            raise UserError(f"{path}: not a run folder (no {runs.RUN_RECORD}) "
                            f"nor a seed group (no {runs.SEEDS_SUMMARY})")
    for row, config in zip(rows, configs):
        # Rows of one config name tell themselves apart by the settings in which they differ.
        alike = [other_config for other_config, other in zip(configs, rows) if other["name"] == row["name"]]
        row["settings"] = {key: value for key, value in config.items()
                           if any(other.get(key, _MISSING) != value for other in alike)}
    return rows


def _row_and_settings(run_dir: Path) -> tuple[dict, dict]:
    """The run's row, and its config as `--set` keys (`model.layers.0.units`) with defaults filled in."""
    config = runs.read_run_config(run_dir)
    return run_row(run_dir, config), flat_settings(config)


def _common(settings: list[dict]) -> dict:
    """The settings every seed run of a group shares (all but train.seed, as a rule)."""
    return {key: value for key, value in settings[0].items()
            if all(other.get(key, _MISSING) == value for other in settings)}


def top_level_runs(root: Path) -> list[Path]:
    """Run folders and seed groups directly under `root`, oldest first."""
    found = {root / p.relative_to(root).parts[0] for p in runs.find_runs(root)}
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def cells(row: dict) -> dict[str, str]:
    """The row as display strings; groups show mean ± std."""
    def accuracy(key):
        if row[key] is None:
            return "-"
        return f"{row[key]:.4f} ± {row[key + '_std']:.4f}" if row["runs"] > 1 else f"{row[key]:.4f}"

    def number(value, fmt):
        if isinstance(value, list):
            return ", ".join(number(item, fmt) for item in value)
        return "-" if value is None else format(value, fmt)

    return {
        "name": row["name"],
        "settings": " ".join(f"{key}={_yaml_scalar(value)}" for key, value in row.get("settings", {}).items()),
        "data": row.get("data", "?"), "runs": str(row["runs"]), "parameters": number(row["parameters"], ","),
        "epochs": number(row["epochs"], ".3g"), "best_val_accuracy": accuracy("best_val_accuracy"),
        "best_epoch": number(row["best_epoch"], ".3g"), "test_accuracy": accuracy("test_accuracy"),
        "ensemble_test_accuracy": number(row.get("ensemble_test_accuracy"), ".4f"),
        "test_macro_f1": accuracy("test_macro_f1"),
        "seconds_per_epoch": number(row["seconds_per_epoch"], ".1f"),
        "train_minutes": number(row["train_minutes"], ".1f"), "device": device(row), "path": row["path"],
    }


def device(row: dict) -> str:
    """The device, and the Keras backend when it is not TensorFlow: "cpu (jax)"."""
    backend = row.get("backend", "tensorflow")
    return str(row["device"]) + ("" if backend == "tensorflow" else f" ({backend})")


def _yaml_scalar(value) -> str:
    """A value as `--set` would take it and a person reads it: null, true, 0.99, movie, 5.34e-3 (a float to
    three significant digits)."""
    if isinstance(value, float):
        return readable(value)
    return yaml.safe_dump(value, default_flow_style=True, width=1_000).removesuffix("\n...\n").strip()


def readable(value: float) -> str:
    """A float to three significant digits, in powers of ten where it is small or large: 0.39, 64.0, 5.34e-3;
    still a float to YAML (a mantissa with a point, a signed exponent)."""
    if value == 0 or 0.01 <= abs(value) < 10_000:
        text = f"{value:.3g}"
        return text if any(c in text for c in ".en") else text + ".0"
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{int(exponent):+d}"


def _keys(rows: list[dict]) -> list[str]:
    """The columns to show: settings only where some rows need it, macro-F1 only where a run has more
    than two classes (for two, accuracy says it), a seed group's accuracy as one model only where one was
    scored, never the run paths."""
    optional = {"settings": any(row.get("settings") for row in rows),
                "test_macro_f1": any(row.get("classes", 2) > 2 for row in rows),
                "ensemble_test_accuracy": any(row.get("ensemble_test_accuracy") is not None for row in rows)}
    return [key for key in COLUMNS if key != "path" and optional.get(key, True)]


def text_table(rows: list[dict]) -> str:
    """Aligned columns for a terminal."""
    keys = _keys(rows) + ["path"]
    table = [[COLUMNS[key] for key in keys]] + [[cells(row)[key] for key in keys] for row in rows]
    return aligned(table)


def aligned(table: list[list[str]]) -> str:
    """Rows of cells as left-aligned columns two spaces apart (the first row: the heads)."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in table)


def markdown_table(rows: list[dict]) -> str:
    """A Markdown table for a README; run paths are left out, they mean nothing elsewhere."""
    keys = _keys(rows)
    lines = ["| " + " | ".join(COLUMNS[key] for key in keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(cells(row)[key] for key in keys) + " |" for row in rows]
    return "\n".join(lines)


def json_text(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2)
