#!/usr/bin/env bash
# The paper's iWildCam Phase-2 flow (the reference's myshells/run_training.sh, runnable):
#   1. build the training table + curriculum-validation table from the scored synthetic spectrum;
#   2. FLYP fine-tuning of CLIP ViT-B/16 (OpenAI) with the adaptive curriculum, 20 epochs, curriculum epoch 15.
# Usage: SYN=runs/gen/iwildcam WILDS=data/wilds OUT=runs/iwildcam [NPROC=8] [CURRICULUM=adaptive] \
#        bash scripts/train_iwildcam.sh [extra train.py flags...]
# NPROC > 1 launches torchrun (DDP); --batch-size 256 stays the global batch.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SYN:?set SYN to the generation output folder (scored by comp_clip_scores.py)}"
: "${WILDS:?set WILDS to the WILDS root dir holding iwildcam_v2.0/}"
OUT="${OUT:-runs/iwildcam}"
NPROC="${NPROC:-1}"
CURRICULUM="${CURRICULUM:-adaptive}"
PY="${PY:-.venv/bin/python}"
DATA="$OUT/data"

if [ ! -f "$DATA/train.csv" ]; then
  "$PY" curriculum/iWildCam/build_data.py --syn_path "$SYN" --data-root "$WILDS" --save_folder "$DATA"
fi

# Every other setting is the trainer's default, the paper's (docs/train-iwildcam.md); extra flags override.
TRAIN=(curriculum/iWildCam/train.py --train-table "$DATA/train.csv" --val-table "$DATA/validate.csv"
       --data-root "$WILDS" --output-dir "$OUT/flyp_$CURRICULUM" --curriculum "$CURRICULUM")
# --resume only when a checkpoint exists, so re-running the script continues an interrupted run.
RESUME=()
[ -f "$OUT/flyp_$CURRICULUM/checkpoints/last.pt" ] && RESUME=(--resume)
if [ "$NPROC" -gt 1 ]; then
  "$(dirname "$PY")/torchrun" --standalone --nproc_per_node "$NPROC" "${TRAIN[@]}" "${RESUME[@]}" "$@"
else
  "$PY" "${TRAIN[@]}" "${RESUME[@]}" "$@"
fi
