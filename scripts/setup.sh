#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install dan with its extras.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${DAN_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
stamp="$VENV/.dan-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    # These releases are the ones this project is tested with (CPU here; a CUDA-capable build).
    # GPU users may install their own torch>=2.10 build first; it is kept.
    echo "[setup] installing torch 2.14.1 / torchvision 0.29.1"
    "$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  fi
  # the distribution is dan-fer (import name and command: dan); an install under its old name "dan" goes first
  "$VENV/bin/python" -m pip uninstall -q -y dan 2>/dev/null || true
  echo "[setup] installing dan-fer[dev,export,serve,stream]"
  "$VENV/bin/python" -m pip install -q -e ".[dev,export,serve,stream]"
  echo "$want" > "$stamp"
fi
