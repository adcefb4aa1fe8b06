#!/usr/bin/env bash
# The figure docs/attention.png: draw generated faces at 224 px, train the synthetic recipe on them,
# score the best checkpoint on the test split, and draw one test face per class with its heads' maps.
#
#   EP=8 FIT="--trainer.accelerator gpu --trainer.precision bf16-mixed --model.channels_last true" bash scripts/demos/attention_figure.sh
#
# Settings (environment): D (data folder), SIZE (224), PER (faces per class, 1000), EP (epochs, 6),
# FIT (more dan fit options), PY (python3), OUT (where attention.png goes; runs/attn).
set -e
D=${D:-runs/attn/data}; SIZE=${SIZE:-224}; PER=${PER:-1000}; EP=${EP:-6}; PY=${PY:-python3}; CK=runs/attn/ck
$PY -m dan synth $D --per-class $PER --size $SIZE --seed 0 | tail -1
$PY -m dan fit -c configs/synthetic.yaml --data.root $D --data.image_size $SIZE --trainer.max_epochs $EP --trainer.enable_progress_bar false $FIT --checkpoint.dirpath $CK --last_checkpoint.dirpath $CK 2>&1 | grep -E "^epoch|best|rror" || true
BEST=$(ls $CK/best*.ckpt | head -1); echo "best: $BEST"
$PY -m dan evaluate --checkpoint $BEST --root $D --split test --format rafdb 2>&1 | grep -iE "accuracy|rror" | head -3
FACES=$(awk '$1 ~ /^test/ && !seen[$2]++ {sub(/\.jpg$/, "", $1); print "'$D'/Image/aligned/" $1 "_aligned.jpg"}' $D/EmoLabel/list_patition_label.txt | head -7)
$PY -m scripts.demos.attention_figure --checkpoint $BEST --out ${OUT:-runs/attn}/attention.png $FACES
