"""Rows per second and peak memory of reading a large CSV: rnn_cli's standard-library reader against
pyarrow and pandas, and rnn_cli's whole load (both passes, encoded). Each mode runs in a process of
its own, so each peak (VmHWM) is its own; pyarrow and pandas are not rnn_cli dependencies: run those
modes with a Python that has them.

    python benchmarks/read_table.py FILE.csv                       # every mode this Python can run
    python benchmarks/read_table.py FILE.csv --modes pyarrow pandas --python /path/to/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODES = ("labels", "texts", "load", "pyarrow", "pandas")


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(mode: str, path: Path) -> dict:
    """Read `path` one way; the rows read, seconds and peak MiB."""
    started = time.perf_counter()
    if mode in ("labels", "texts"):  # rnn_cli's reader: the first pass (labels only), or keeping every text
        from rnn_cli.own_files import read_rows

        rows = len(read_rows(path, "csv", "text", "label", texts=mode == "texts").labels)
    elif mode == "load":  # rnn_cli's whole load: labels, test split, every text encoded
        os.environ["RNN_CLI_CACHE"] = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"read-table-{os.getpid()}")
        from rnn_cli.config import DataConfig
        from rnn_cli.data import load_data

        splits = load_data(DataConfig(source="csv", path=str(path)))
        rows = len(splits.train) + len(splits.val) + len(splits.test)
    elif mode == "pyarrow":
        import pyarrow.csv

        rows = pyarrow.csv.read_csv(path).num_rows
    else:
        import pandas

        rows = len(pandas.read_csv(path))
    seconds = time.perf_counter() - started
    return {"mode": mode, "rows": rows, "seconds": round(seconds, 1), "rows_per_second": round(rows / seconds),
            "peak_mib": round(peak_mib())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the modes")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child, args.file)))
        return
    print("| mode | rows | seconds | rows/s | peak MiB |\n| --- | --- | --- | --- | --- |")
    for mode in args.modes:
        done = subprocess.run([args.python, __file__, str(args.file), "--child", mode], capture_output=True,
                              text=True)
        if done.returncode != 0:
            print(f"| {mode} | failed: {(done.stderr.strip().splitlines() or ['?'])[-1]} | | | |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {mode} | {r['rows']:,} | {r['seconds']} | {r['rows_per_second']:,} | {r['peak_mib']:,} |")


if __name__ == "__main__":
    main()
