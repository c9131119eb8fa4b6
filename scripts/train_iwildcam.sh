#!/usr/bin/env bash
# DisCL Phase 2 on iWildCam (the reference's myshells/run_training.sh, runnable):
#   1. the training table + curriculum-validation table from the scored spectrum (skipped once complete);
#   2. [BASELINE=1] the FLYP baseline on the real images, for comparison;
#   3. FLYP fine-tuning of CLIP ViT-B/16 (OpenAI) with the adaptive curriculum (20 epochs, curriculum epoch 15).
#   DATA_ROOT=/data/wilds SYN=/data/syn/iwildcam OUT=runs/iwildcam NPROC=8 bash scripts/train_iwildcam.sh
# DATA_ROOT: the WILDS root (holding iwildcam_v2.0/); SYN: the folder scored by comp_clip_scores.py; OUT
# [runs/iwildcam]: tables in $OUT/data, runs in $OUT/flyp_$CURRICULUM (and $OUT/flyp_none for the baseline).
# NPROC [1] > 1 trains with torchrun on that many GPUs (--batch-size 256 stays the global batch).
# CURRICULUM [adaptive] (any other schedule: no curriculum-validation hold-out, it is never probed); per-step flags: BUILD_ARGS (build_data.py), BASELINE_ARGS, TRAIN_ARGS (train.py; flags
# after the script name are added to TRAIN_ARGS). Every other setting is the paper's (docs/train-iwildcam.md).
# Rerun the same command to continue: complete tables are kept and a run with checkpoints/last.pt resumes.
set -euo pipefail
source "$(dirname "$0")/flow_lib.sh"
DATA_ROOT="${DATA_ROOT:-${WILDS:-${WILDS_ROOT:-}}}"
require DATA_ROOT "set it to the WILDS root (the folder holding iwildcam_v2.0/)"
require SYN "set it to the generation output folder (scored by comp_clip_scores.py)"
OUT="${OUT:-runs/iwildcam}"
NPROC="${NPROC:-${GPUS:-1}}"
CURRICULUM="${CURRICULUM:-adaptive}"
DATA="$OUT/data"
stage_args BUILD "${BUILD_ARGS:-}"
stage_args BASE "${BASELINE_ARGS:-}"
stage_args TRAIN "${TRAIN_ARGS:-}"
TRAIN+=("$@")

need_dir DATA_ROOT "$DATA_ROOT/iwildcam_v2.0" "the WILDS iWildCam folder"
tables_complete "$DATA" || need_file SYN "$SYN/clip_scores.csv" "scored spectrum (comp_clip_scores.py writes it)"
not_a_file OUT "$OUT"
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || die "NPROC=$NPROC: expected a positive integer"
if [ "$NPROC" -gt 1 ] && [ "$(gpu_count)" -lt "$NPROC" ]; then
  die "NPROC=$NPROC but $(gpu_count) GPU(s) are visible"
fi
note_no_gpu

if tables_complete "$DATA"; then
  step "tables: $DATA is complete (delete it to rebuild)"
else
  step "tables -> $DATA"
  VAL=()
  [ "$CURRICULUM" = adaptive ] || VAL=(--val-size 0)  # no hold-out the schedule never probes
  "$PY" "$REPO/curriculum/iWildCam/build_data.py" --data-root "$DATA_ROOT" --syn-path "$SYN" --output-dir "$DATA" \
    "${VAL[@]}" "${BUILD[@]}"
fi

# --resume when the run folder holds a checkpoint, so rerunning the script continues an interrupted run
resume_flag() { if [ -f "$1/checkpoints/last.pt" ]; then echo --resume; fi; }

if [ -n "${BASELINE:-}" ]; then
  RUN="$OUT/flyp_none"
  step "FLYP baseline -> $RUN"
  # shellcheck disable=SC2046  # resume_flag prints one flag or nothing
  launch "$NPROC" "$REPO/curriculum/iWildCam/train.py" --data-root "$DATA_ROOT" --output-dir "$RUN" \
    --curriculum none $(resume_flag "$RUN") "${BASE[@]}"
fi

RUN="$OUT/flyp_$CURRICULUM"
step "FLYP + DisCL ($CURRICULUM) -> $RUN"
# shellcheck disable=SC2046
launch "$NPROC" "$REPO/curriculum/iWildCam/train.py" --train-table "$DATA/train.csv" --val-table "$DATA/validate.csv" \
  --data-root "$DATA_ROOT" --output-dir "$RUN" --curriculum "$CURRICULUM" $(resume_flag "$RUN") "${TRAIN[@]}"
step "done: $RUN"
