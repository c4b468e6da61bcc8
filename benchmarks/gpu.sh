#!/usr/bin/env bash
# The GPU path on JAX and PyTorch: configs/simple_rnn, lstm and best trained for 2 epochs each on the
# GPU and on the same machine's CPU; prints seconds per epoch, the GPU/CPU ratio and the kernel each
# recurrent layer ran (run.json), as a Markdown table (docs/performance.md#backends).
#
#   benchmarks/gpu.sh prepare   on a machine with package registries and ../shared: the wheels that
#                               Keras needs beyond a PyTorch + JAX image (keras, namex, optree) and a
#                               small aclImdb folder drawn from the shared archive, in .gpu/ (ignored)
#   benchmarks/gpu.sh run       on the GPU machine, offline: installs those wheels, trains, prints;
#                               also writes $OUT/gpu.md and $OUT/gpu.json when OUT is set
#
# Settings (environment): PYTHON (python3), BACKENDS ("jax torch"), DEVICES ("gpu cpu"; a device
# that is not there is reported and skipped), CONFIGS ("simple_rnn lstm best"), EPOCHS (2), TIMEOUT (600 s
# a training), DEADLINE (no training starts after this many seconds, so that the table is printed
# inside a lease; default none), and for prepare REVIEWS (2000 training and as many test reviews, half
# of each class). The GPU's trainings run first.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.gpu
PYTHON=${PYTHON:-python3}
BACKENDS=${BACKENDS:-jax torch}
DEVICES=${DEVICES:-gpu cpu}
CONFIGS=${CONFIGS:-simple_rnn lstm best}
EPOCHS=${EPOCHS:-2}

prepare() {
    local archive=../shared/data/aclImdb_v1_labeled.tar.gz keras
    keras=$(${PREPARE_PYTHON:-.venv/bin/python} -c "import importlib.metadata as m; print(m.version('keras'))")
    rm -rf "$DIR/wheels" && mkdir -p "$DIR/wheels"
    for version in 3.11 3.12; do  # the GPU image's Python is 3.12; 3.11 is this project's
        pip download --quiet --no-deps --only-binary=:all: --python-version "$version" \
            --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
            -d "$DIR/wheels" "keras==$keras" namex optree
    done
    rm -rf "$DIR/aclImdb"
    "${PREPARE_PYTHON:-.venv/bin/python}" - "$archive" "$DIR" "${REVIEWS:-2000}" <<'EOF'
import sys, tarfile
from pathlib import Path

archive, out, reviews = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
wanted = {f"aclImdb/{split}/{label}/": reviews // 2 for split in ("train", "test") for label in ("pos", "neg")}
with tarfile.open(archive) as tar:
    for member in tar:
        folder = member.name.rsplit("/", 1)[0] + "/"
        if member.isfile() and member.name.endswith(".txt") and wanted.get(folder, 0) > 0:
            wanted[folder] -= 1
            target = out / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
        if not any(wanted.values()):
            break
print(f"{out}/aclImdb: {reviews} training and {reviews} test reviews")
EOF
    du -sh "$DIR"
}

run() {
    "$PYTHON" -c "import keras" 2>/dev/null ||
        "$PYTHON" -m pip install --quiet --no-index --find-links "$DIR/wheels" keras namex optree
    local runs=$DIR/runs
    rm -rf "$runs" && mkdir -p "$runs"
    export PYTHONPATH=$PWD RNN_CLI_CACHE=$DIR/cache PYTHONUNBUFFERED=1
    for device in $DEVICES; do
        for backend in $BACKENDS; do
            for config in $CONFIGS; do
                if [ -n "${DEADLINE:-}" ] && [ "$SECONDS" -ge "$DEADLINE" ]; then
                    echo "== $backend $device $config: skipped, past DEADLINE ${DEADLINE} s" >&2
                    continue
                fi
                echo "== $backend $device $config (at ${SECONDS} s)" >&2
                KERAS_BACKEND=$backend timeout "${TIMEOUT:-600}" "$PYTHON" -m rnn_cli.cli train --config "configs/$config.yaml" \
                    --data "$DIR/aclImdb" --epochs "$EPOCHS" --device "$device" --set "train.backend=$backend" \
                    --run "$runs/$backend-$device-$config" --quiet >&2 || echo "   (failed or skipped)" >&2
            done
        done
    done
    "$PYTHON" - "$runs" "${OUT:-}" <<'EOF'
import json, statistics, sys
from pathlib import Path

runs, out = Path(sys.argv[1]), sys.argv[2]
rows = []
for folder in sorted(runs.iterdir()):
    backend, device, config = folder.name.split("-", 2)
    record = json.loads((folder / "run.json").read_text()) if (folder / "run.json").exists() else {}
    history = json.loads((folder / "history.json").read_text()) if (folder / "history.json").exists() else []
    if record.get("status") != "finished":
        continue
    later = [row["seconds"] for row in history[1:]] or [history[-1]["seconds"]]  # epoch 1 compiles
    rows.append({"config": config, "backend": backend, "device": record["device"], "epochs": len(history),
                 "first_epoch_seconds": history[0]["seconds"], "seconds": statistics.median(later),
                 "batches": record["fast_path"]["batches"], "kernels": record["kernels"],
                 "val_accuracy": max(row["val_accuracy"] for row in history), "versions": record["versions"]})
cpu = {(r["config"], r["backend"]): r["seconds"] for r in rows if r["device"] == "cpu"}
lines = ["| config | backend | device | s/epoch | first epoch s | CPU/GPU | batches | kernels | best val acc |",
         "|" + " --- |" * 9]
for r in rows:
    ratio = cpu.get((r["config"], r["backend"]))
    ratio = f"{ratio / r['seconds']:.1f}" if ratio and r["device"] != "cpu" else "-"
    kernels = ", ".join(f"{name}: {k['kernel']}" for name, k in r["kernels"].items())
    lines.append(f"| {r['config']} | {r['backend']} | {r['device']} | {r['seconds']:.2f} | "
                 f"{r['first_epoch_seconds']:.1f} | {ratio} | {r['batches']} | {kernels} | {r['val_accuracy']:.4f} |")
table = "\n".join(lines)
print(table)
for r in rows:
    print(f"{r['config']}/{r['backend']}/{r['device']}: " + "; ".join(
        f"{name}: {k['why']}" for name, k in r["kernels"].items()))
if out:
    Path(out, "gpu.md").write_text(table + "\n")
    Path(out, "gpu.json").write_text(json.dumps(rows, indent=2) + "\n")
EOF
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: benchmarks/gpu.sh prepare | run" >&2; exit 2 ;;
esac
