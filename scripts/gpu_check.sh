#!/usr/bin/env bash
# GPU check of the training pipeline: draw a synthetic data set (dan synth, 224 px), then train the
# RAF-DB recipe's model (configs/rafdb.yaml; random backbone weights, since resnet18_msceleb.pth is
# not needed for speed) for STEPS steps in bf16-mixed and in 32-true precision on one device, and
# print images/s, peak GPU memory and the step time split (data wait against compute).
#
#   bash scripts/gpu_check.sh                                   # one GPU, 300 steps per precision
#   STEPS=3 DEVICE=cpu BATCH=4 WORKERS=0 PER_CLASS=3 bash scripts/gpu_check.sh   # a CPU smoke run
#
# Settings (environment): STEPS (300), DEVICE (gpu | cpu), PRECISIONS ("bf16-mixed 32-true"),
# BATCH (256, the recipe's), WORKERS (8, the recipe's), HEAD (dan | mha), SIZE (224, image side of
# the drawn data), PER_CLASS (1000 images per class), CONFIG (configs/rafdb.yaml), WORK
# (runs/gpu_check), EXTRA (more dan fit options, e.g. "--model.channels_last true"), RESULTS (JSON file; default $OUT/gpu_check.json when OUT is set, else in WORK),
# PY (.venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-300}
DEVICE=${DEVICE:-gpu}
PRECISIONS=${PRECISIONS:-"bf16-mixed 32-true"}
BATCH=${BATCH:-256}
WORKERS=${WORKERS:-8}
HEAD=${HEAD:-dan}
SIZE=${SIZE:-224}
PER_CLASS=${PER_CLASS:-1000}
CONFIG=${CONFIG:-configs/rafdb.yaml}
WORK=${WORK:-runs/gpu_check}
RESULTS=${RESULTS:-${OUT:-$WORK}/gpu_check.json}
PY=${PY:-.venv/bin/python}
EXTRA=${EXTRA:-}
[ -x "$PY" ] || PY=python3

DATA="$WORK/data-${SIZE}px-${PER_CLASS}"
if [ ! -f "$DATA/EmoLabel/list_patition_label.txt" ]; then
    echo "== drawing $((7 * PER_CLASS)) faces at ${SIZE} px into $DATA"
    "$PY" -m dan synth "$DATA" --per-class "$PER_CLASS" --size "$SIZE" --seed 0
fi
if [ "$DEVICE" != "cpu" ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi

echo "== $CONFIG, $STEPS steps per precision ($PRECISIONS), batch $BATCH, $WORKERS workers, head $HEAD, $DEVICE"
# shellcheck disable=SC2086  # PRECISIONS is a list
"$PY" scripts/gpu_check.py --data "$DATA" --config "$CONFIG" --steps "$STEPS" --device "$DEVICE" \
    --precision $PRECISIONS --batch "$BATCH" --workers "$WORKERS" --head "$HEAD" --work "$WORK" --json "$RESULTS" --extra "$EXTRA"
