#!/usr/bin/env bash
# Set up the environment (if needed) and run the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/python -m ruff check dan tests scripts
.venv/bin/python -m ruff format --check dan tests scripts
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -q -n 2 "$@"
