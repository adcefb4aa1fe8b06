#!/usr/bin/env bash
# GPU check of the training input pipeline and options: draw a synthetic data set (dan synth, 224 px faces,
# about RAF-DB's size), then train the RAF-DB recipe (configs/rafdb.yaml: bf16, batch 256, 8 workers,
# channels-last; random backbone weights, since the GPU machine cannot fetch resnet18_msceleb.pth) for
# STEPS steps per row and print images/s, the step time split (data wait against compute) and peak GPU
# memory for each row (scripts/maint/gpu_check.py):
#   old         float32 faces normalised in the workers (data.device_transforms: false)
#   new         uint8 faces, normalised and erased on the device (the default)
#   new100      new on the same faces drawn at 100 px (RAF-DB's aligned size): resized to 224 in the workers
#   resize100   those 100 px faces with data.device_resize: 100: augmented at 100 px, resized on the device
#   contiguous  new with channels-last off (the recipe trains channels-last)
#   compile     new + model.compile: true (last: its compilation is the longest part)
# Budget on an H100/H200 with 16 CPU cores: about 30 s to draw the data, 20-40 s per row, 1-3 min for
# compile's compilation; well under 10 minutes in all.
#
#   bash scripts/gpu_check.sh wheels     # HERE (with pip and a registry): the packages the GPU machine lacks
#                                        # (albumentations, jsonargparse, ...) as cp312 wheels into .whl/
#   bash scripts/gpu_check.sh            # THERE: installs .whl/*.whl (if carried) into /tmp/site, then runs
#   STEPS=3 DEVICE=cpu PRECISION=32-true BATCH=4 WORKERS=0 PER_CLASS=3 SIZE=32 ROWS="old new" \
#       EXTRA="--data.image_size 32" bash scripts/gpu_check.sh     # a CPU smoke run
#
#   INFER=only INFER_ARGS="--model tiny --images 4 --eval-per-class 5" DEVICE=cpu bash scripts/gpu_check.sh
#                                        # the inference rows alone, a CPU smoke run
#
# Through the device tool: run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=600); the
# table comes back in the output and as $OUT/gpu_check.json and $OUT/gpu_check.log.
#
# Settings (environment): ROWS ("old new new100 resize100 contiguous compile"), STEPS (80), WARMUP (a
# quarter of STEPS, at most 20: 60 timed steps of 80), DEVICE (gpu | cpu), PRECISION (bf16-mixed), BATCH (256), WORKERS (8), HEAD (dan | mha),
# SIZE (224, the drawn faces' side), PER_CLASS (2200: 12,320 training faces, RAF-DB has 12,271), CONFIG
# (configs/rafdb.yaml), WORK (runs/gpu_check), EXTRA (more dan fit options for every row), RESULTS (JSON
# file; default $OUT/gpu_check.json when OUT is set, else in WORK), PY (.venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
# what the GPU machine's image lacks of dan's training dependencies, at the versions tested here
WHEELS="albumentations albucore pydantic pydantic_core annotated-types typing-inspection typing_extensions
simsimd stringzilla jsonargparse docstring_parser typeshed_client platformdirs"

if [ "${1:-}" = "wheels" ]; then
    specs=$("$PY" - $WHEELS <<'EOF'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
EOF
)
    platforms=""
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
        platforms="$platforms --platform $p"
    done
    # shellcheck disable=SC2086  # word lists on purpose
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
        -d .whl $specs
    ls -l .whl
    exit 0
fi

START=$SECONDS
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    echo "== installed $(ls .whl | wc -l) wheels into /tmp/site ($((SECONDS - START)) s)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

ROWS=${ROWS:-"old new new100 resize100 contiguous compile"}
STEPS=${STEPS:-80}
WARMUP=${WARMUP:-}
DEVICE=${DEVICE:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
BATCH=${BATCH:-256}
WORKERS=${WORKERS:-8}
HEAD=${HEAD:-dan}
SIZE=${SIZE:-224}
PER_CLASS=${PER_CLASS:-2200}
CONFIG=${CONFIG:-configs/rafdb.yaml}
WORK=${WORK:-runs/gpu_check}
RESULTS=${RESULTS:-${OUT:-$WORK}/gpu_check.json}
LOG=${OUT:-$WORK}/gpu_check.log
EXTRA=${EXTRA:-}
export DAN_HOME="$WORK/dan_home"  # never the user's cache; nothing is downloaded
mkdir -p "$WORK" "$(dirname "$RESULTS")"

# --- inference rows (scripts/maint/gpu_check_infer.py): batched dan predict faces/s and dan evaluate images/s,
# torch and ONNX Runtime; after the training rows. INFER=0 skips them, INFER=only runs only them.
INFER=${INFER:-1}
infer() {
    local device=cuda
    [ "$DEVICE" = cpu ] && device=cpu
    echo "== inference rows on $device"
    # shellcheck disable=SC2086  # INFER_ARGS is a list of options
    "$PY" -m scripts.maint.gpu_check_infer --device "$device" --work "$WORK/infer" \
        --json "${OUT:-$WORK}/gpu_check_infer.json" ${INFER_ARGS:-} 2>&1 | tee -a "$LOG"
    return "${PIPESTATUS[0]}"
}
if [ "$INFER" = only ]; then
    : >"$LOG"
    infer && status=0 || status=$?
    echo "== done in $((SECONDS - START)) s"
    exit "$status"
fi

draw() {  # draw SIDE: the faces at SIDE px, once
    local data="$WORK/data-${1}px-${PER_CLASS}"
    if [ ! -f "$data/dan-synth.json" ]; then
        echo "== drawing $((7 * PER_CLASS)) faces at $1 px into $data" >&2
        "$PY" -m dan synth "$data" --per-class "$PER_CLASS" --size "$1" --seed 0 --force >&2
    fi
    echo "$data"
}
DATA=$(draw "$SIZE")
DATA100=""
case " $ROWS " in *"100 "*) DATA100=$(draw 100) ;; esac
if [ "$DEVICE" != "cpu" ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
fi
echo "== $(nproc) CPUs; /dev/shm: $(df -h /dev/shm 2>/dev/null | awk 'NR == 2 {print $2 " size, " $4 " free"}')"
echo "== $CONFIG: rows $ROWS; $STEPS steps each, batch $BATCH, $WORKERS workers, $PRECISION, $DEVICE"
# shellcheck disable=SC2086  # ROWS is a list
"$PY" -m scripts.maint.gpu_check --data "$DATA" ${DATA100:+--data100 "$DATA100"} --config "$CONFIG" --rows $ROWS \
    --steps "$STEPS" ${WARMUP:+--warmup "$WARMUP"} \
    --device "$DEVICE" --precision "$PRECISION" --batch "$BATCH" --workers "$WORKERS" --head "$HEAD" \
    --work "$WORK" --json "$RESULTS" --extra "$EXTRA" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
if [ "$INFER" != 0 ]; then
    infer || status=1
fi
echo "== done in $((SECONDS - START)) s"
exit "$status"
