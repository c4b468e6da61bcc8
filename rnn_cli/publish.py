"""Where an export goes: a destination checked before anything is built (never a run's folder, never a
folder of someone else's files unless --force), and a finished export published there by one rename."""

from __future__ import annotations

import json
from pathlib import Path

from rnn_cli import runs
from rnn_cli.errors import UserError
from rnn_cli.files import replace, storage_error

EXPORT_MARK = ".rnn-export.json"  # in every folder rnn export publishes: the next export may replace it


def destination(run_dir: Path, fmt: str, out: Path | None = None) -> Path:
    """Where an export of `fmt` goes: `out`, else RUN/export/<fmt>."""
    return Path(out or run_dir / "export" / fmt)


def check_destination(out: Path, run_dir: Path, force: bool) -> str | None:
    """One line unless `out` may take the export: a new path, an empty folder or an earlier export of rnn
    export's (which it replaces, or adds a version to); with `force`, any other folder, never a run's or one
    holding runs. Returns what `force` will replace, said in words."""
    where = out.resolve()
    owner = next((folder for folder in (where, *where.parents) if runs.is_run_folder(folder)), None)
    if owner is not None and not where.is_relative_to(owner / "export"):
        raise UserError(f"--out {out}: inside the run folder {owner}, whose files an export never replaces; give a "
                        f"folder outside it, or leave --out out (RUN/export/FORMAT)")
    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a new folder")
    if (out / EXPORT_MARK).exists():
        return None
    held = runs.find_runs(out, needs=runs.RUN_RECORD)
    if held or where in (run_dir.resolve(), *run_dir.resolve().parents):
        raise UserError(f"--out {out}: holds runs ({held[0] if held else run_dir}); an export never replaces them")
    entries = list(out.iterdir())
    if entries and not force:
        raise UserError(f"--out {out}: exists and holds {len(entries)} file(s) or folder(s) rnn export did not "
                        f"write; give a new folder, or add --force to replace it whole")
    return f"its {len(entries)} file(s) or folder(s) are removed" if entries else None


def publish(staging: Path, out: Path, versioned: bool, run_dir: Path, fresh: bool = False) -> Path:
    """Move a finished export into place by one rename: a SavedModel as OUT's next version folder when OUT is an
    earlier export (TensorFlow Serving loads the highest), else as OUT/1/; anything else as OUT itself. What it
    replaces (an earlier export, or a folder --force gave up) is moved aside first and removed with the staging
    folder; OUT is marked as rnn export's (EXPORT_MARK)."""
    mark = json.dumps({"run": str(run_dir), "format": "saved_model" if versioned else "token ids"}) + "\n"
    try:
        if versioned and not fresh and (out / EXPORT_MARK).exists():
            numbers = [int(p.name) for p in out.iterdir() if p.is_dir() and p.name.isdigit()]
            target = out / str(max(numbers, default=0) + 1)
            replace(staging, target)
            return target
        folder = staging
        if versioned:
            folder = staging.with_name("published")
            folder.mkdir()
            replace(staging, folder / "1")
        (folder / EXPORT_MARK).write_text(mark, encoding="utf-8")
        if out.exists():
            replace(out, staging.with_name("previous"))
        replace(folder, out)
        return out / "1" if versioned else out
    except OSError as err:
        raise storage_error(out, err) from None
