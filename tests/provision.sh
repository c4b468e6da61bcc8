#!/usr/bin/env bash
# What the tests need beyond pyproject's extras, installed by `make test`: PyTorch's CPU build and Chromium.
# Usage: bash tests/provision.sh VENV_PYTHON
set -euo pipefail
python=${1:?usage: tests/provision.sh VENV_PYTHON}

# PyTorch (the torch backend's tests). PyPI's Linux torch is the CUDA build, whose nvidia-* packages are
# several GB; PyTorch's own CPU index has the same release as 2.13.0+cpu, which pip prefers to 2.13.0.
# --no-deps: a CUDA build that slipped through is caught below before its CUDA stack is fetched.
TORCH=${TORCH:-torch==2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
if ! "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
  "$python" -m pip install --quiet --no-deps --extra-index-url "$TORCH_CPU_INDEX" "$TORCH" 2>/dev/null || true
fi
cuda=$("$python" - <<'PY'
from importlib import metadata
try:
    needs = metadata.requires("torch") or []
except metadata.PackageNotFoundError:
    print("missing")
else:
    print("cuda" if any(r.startswith("nvidia-") and "extra ==" not in r for r in needs) else "cpu")
PY
)
if [ "$cuda" = cpu ]; then
  "$python" -m pip install --quiet "$TORCH"  # its own small dependencies, from PyPI
else
  [ "$cuda" = cuda ] && "$python" -m pip uninstall --quiet --yes torch
  echo "make test: PyTorch's CPU build could not be fetched ($TORCH from $TORCH_CPU_INDEX); the torch" \
       "backend is not installed and its tests run on the other backends only" >&2
fi

# Chromium, for rnn serve's page in a real headless browser (Playwright's own browser download needs its CDN).
if [ -z "${RNN_CLI_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    sudo=$([ "$(id -u)" = 0 ] || echo "sudo -n")
    echo "make test: installing Debian's chromium for the page test (apt-get)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  else
    echo "make test: the page test needs Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium)" \
         "or set RNN_CLI_CHROMIUM=/path/to/chromium" >&2
    exit 1
  fi
fi
