#!/usr/bin/env bash
# ECE and NLL on the test split before and after `dan calibrate`, for a quickstart-style run: a
# checkpoint trained on a generated set (`dan synth`, RAF-DB layout). T is fitted on the faces training
# held out of its training split (never the test split). Usage:
#   bash scripts/demos/calibration_figure.sh [RUN_DIR] [DAN]
# RUN_DIR holds data/ and checkpoints/best.ckpt (default runs/quickstart, what scripts/quickstart.sh
# writes); DAN is the command (default .venv/bin/dan). Writes RUN_DIR/checkpoints/best-calibrated.ckpt
# and the two reports under RUN_DIR/calibration/.
set -euo pipefail
RUN=${1:-runs/quickstart}
DAN=${2:-.venv/bin/dan}
$DAN calibrate --checkpoint "$RUN/checkpoints/best.ckpt" --format rafdb --root "$RUN/data" \
  --output "$RUN/checkpoints/best-calibrated.ckpt"
for name in best best-calibrated; do
  $DAN evaluate --checkpoint "$RUN/checkpoints/$name.ckpt" --format rafdb --root "$RUN/data" --split test \
    --output "$RUN/calibration/$name" | grep -E "^(rafdb/test|calibration):"
done
