#!/usr/bin/env bash
# DisCL Phase 1 on iWildCam, the reference's flow: hard samples -> spectrum (every part) -> CLIPScore.
#   DATA_ROOT=/data/wilds SYN=/data/syn/iwildcam bash scripts/data_generation_wilds.sh
# DATA_ROOT is the WILDS root (the folder holding iwildcam_v2.0/); SYN the folder of the synthetic images.
# Step 1 writes $SYN/hard_samples.csv (HARD_CSV): the training images the zero-shot CLIP ViT-B/16 (OpenAI)
# misclassifies; another classifier: HARD_ARGS="--checkpoint runs/iwildcam/flyp_none/checkpoints/best.pt"
# (the FLYP baseline of BASELINE=1 bash scripts/train_iwildcam.sh).
# Step 2 generates the paper's spectrum (SDXL refiner, strengths 0.1..1.0 x seeds 10..70, 480x270); only what
# the training tables keep: GEN_ARGS="--strengths 0.1 0.2 0.3 0.4 0.5". Step 3 scores it (threshold 0.25).
# Every other variable (TOTAL_PARTS, PARTS, NPROC, STEPS, DRY_RUN, HARD_ARGS, GEN_ARGS, SCORE_ARGS, PY) is
# scripts/data_generation.sh's; rerun the same command to resume.
set -euo pipefail
source "$(dirname "$0")/flow_lib.sh"
export DATASET=iwildcam
export DATA_ROOT="${DATA_ROOT:-${WILDS_ROOT:-${WILDS:-}}}" SYN="${SYN:-${OUTPUT:-}}"
require DATA_ROOT "set it to the WILDS root (the folder holding iwildcam_v2.0/)"
require SYN "set it to the folder of the synthetic images"
[ -d "$DATA_ROOT/iwildcam_v2.0" ] || die "DATA_ROOT=$DATA_ROOT holds no iwildcam_v2.0/"
exec bash "$(dirname "$0")/data_generation.sh"
