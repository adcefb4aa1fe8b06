#!/usr/bin/env bash
# The main job end to end on a generated data set, on the CPU, with no download and no data set:
# set up .venv, draw faces, train DAN (validating on faces held out of the training split), evaluate
# the best checkpoint on the test split it never saw, and run the demo on a video of test faces.
# Everything lands in runs/quickstart/ (override: QUICKSTART_DIR). Run it again after an interruption
# and it goes on: the data set is kept, and training resumes from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${QUICKSTART_DIR:-runs/quickstart}
DAN=.venv/bin/dan
PER_CLASS=${QUICKSTART_PER_CLASS:-2500}
start=$(date +%s)
stage_start=$start
stage_done() {  # how long the stage took: where the minutes go, on your machine
  local now
  now=$(date +%s)
  echo "   ($(( now - stage_start )) s)"
  stage_start=$now
}
mkdir -p "$OUT"
.venv/bin/python -c "from dan.system import describe_machine; print('== ' + describe_machine())"

echo "== 1/4 generate the synthetic data set ($PER_CLASS faces per class)"
$DAN synth "$OUT/data" --per-class "$PER_CLASS" --seed 0
stage_done

echo "== 2/4 train (configs/synthetic.yaml; one line per epoch)"
resume=()
if [ -f "$OUT/checkpoints/last.ckpt" ]; then
  echo "resuming from $OUT/checkpoints/last.ckpt (delete $OUT/checkpoints to start over)"
  resume=(--ckpt_path "$OUT/checkpoints/last.ckpt")
fi
$DAN fit -c configs/synthetic.yaml --data.root "$OUT/data" --trainer.enable_progress_bar false \
  --checkpoint.dirpath "$OUT/checkpoints" --checkpoint.filename best \
  --last_checkpoint.dirpath "$OUT/checkpoints" "${resume[@]}" "$@"
stage_done

echo "== 3/4 evaluate the best checkpoint on the test split (faces no checkpoint was chosen on)"
$DAN evaluate --checkpoint "$OUT/checkpoints/best.ckpt" --format rafdb --root "$OUT/data" --split test \
  --tta --output "$OUT/eval"
stage_done

echo "== 4/4 demo on a video of test faces"
.venv/bin/python -m scripts.demos.demo_video "$OUT/data/Image/aligned" "$OUT/demo_in.mp4" --pattern 'test_*' --seconds 12
$DAN demo --checkpoint "$OUT/checkpoints/best.ckpt" --source "$OUT/demo_in.mp4" --detector none \
  --output "$OUT/demo_out.mp4" --csv "$OUT/demo.csv" --no-display
stage_done

echo
echo "done in $(( $(date +%s) - start )) s (after set-up)"
echo "  report:          $OUT/eval/report.md  (metrics.json, predictions.csv, confusion.png beside it)"
echo "  checkpoint:      $OUT/checkpoints/best.ckpt  (trained on generated faces: for real photos use --checkpoint rafdb)"
echo "  annotated video: $OUT/demo_out.mp4  (per-frame rows: $OUT/demo.csv)"
echo "  training logs:   runs/synthetic/ (tensorboard --logdir runs)"
