#!/usr/bin/env bash
# The reference's ImageNet-LT training flow (curriculum_training/ImageNet/myshells/run_training.sh), end to end:
#   1. build train.txt / validate.txt from the scored synthetic spectrum,
#   2. train the plain long-tailed baseline with cross-entropy (the checkpoint the curriculum starts from),
#   3. fine-tune it with the synthetic → real curriculum (10 → 30 → 50 → real at epochs 0, 14, 29, 44), $LOSS.
# Paths come from the environment; every other setting is the paper's default (docs/train-imagenet-lt.md).
#   INLT=/data/imagenet SYN=runs/gen/imagenet_lt OUT=runs/lt LOSS=balanced_softmax GPUS=4 bash scripts/train_imagenet_lt.sh
# Skip step 2 with INIT=path/to/checkpoint.pt. Extra flags for step 3 go after the script name.
# Re-running the script continues: step 1 is skipped once its lists exist, and steps 2 and 3 get --resume
# when their checkpoints/last.pt exists.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${INLT:?set INLT to the ImageNet-LT root (ImageNet_LT_{train,val,test}.txt and the images)}"
: "${SYN:?set SYN to the generation output folder scored by comp_clip_scores.py}"
OUT="${OUT:-runs/imagenet_lt}"
LOSS="${LOSS:-ce}"               # ce | balanced_softmax: the curriculum's loss (the baseline is always CE)
MODE="${MODE:-full}"             # full | onlyfc (the reference script's modelver)
GPUS="${GPUS:-1}"
PY="${PY:-.venv/bin/python}"
if [ "$GPUS" -gt 1 ]; then LAUNCH=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$GPUS"); else LAUNCH=("$PY"); fi

# --resume when the run folder already holds a checkpoint, so an interrupted step continues
resume_flag() { [ -f "$1/checkpoints/last.pt" ] && echo --resume || true; }

if [ ! -f "$OUT/data/train.txt" ] || [ ! -f "$OUT/data/validate.txt" ]; then
  "$PY" curriculum/ImageNet_LT/build_data.py --syn_path "$SYN" --data-root "$INLT" --save_folder "$OUT/data"
fi

if [ -z "${INIT:-}" ]; then
  # the paper starts from a model trained with CE on the real ImageNet-LT, whatever loss the curriculum uses
  BASELINE="$OUT/baseline_ce"
  "${LAUNCH[@]}" curriculum/ImageNet_LT/train_baseline.py --data-root "$INLT" --loss ce \
    --output-dir "$BASELINE" $(resume_flag "$BASELINE")
  INIT="$BASELINE/checkpoints/best.pt"
fi

RUN="$OUT/discl_${LOSS}_${MODE}"
"${LAUNCH[@]}" curriculum/ImageNet_LT/train.py --data-root "$INLT" --train-table "$OUT/data/train.txt" \
  --val-table "$OUT/data/validate.txt" --init "$INIT" --train-mode "$MODE" --loss "$LOSS" \
  --output-dir "$RUN" $(resume_flag "$RUN") "$@"
