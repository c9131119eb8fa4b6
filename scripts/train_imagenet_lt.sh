#!/usr/bin/env bash
# DisCL Phase 2 on ImageNet-LT (the reference's curriculum_training/ImageNet/myshells/run_training.sh, runnable):
#   1. train.txt / validate.txt from the scored spectrum (skipped once complete);
#   2. the plain long-tailed baseline with cross-entropy: the checkpoint the curriculum starts from (INIT skips it);
#   3. the synthetic -> real curriculum from it (10 -> 30 -> 50 -> real at epochs 0, 14, 29, 44), loss $LOSS.
#   DATA_ROOT=/data/imagenet SYN=/data/syn/imagenet_lt OUT=runs/imagenet_lt bash scripts/train_imagenet_lt.sh
# DATA_ROOT: the ImageNet root with ImageNet_LT_{train,val,test}.txt; SYN: the folder scored by
# comp_clip_scores.py; OUT [runs/imagenet_lt]: lists in $OUT/data, runs in $OUT/baseline_ce, $OUT/discl_$LOSS_$MODE.
# LOSS [ce] ce | balanced_softmax (the curriculum's; the baseline is CE); MODE [full] full | onlyfc; CURRICULUM
# [fixed] the schedule (the curriculum-validation hold-out is built only for adaptive, which probes it);
# NPROC [1] > 1 trains with torchrun; per-step flags: BUILD_ARGS (build_data.py, e.g. "--threshold 0.28
# --val-size 200"), BASELINE_ARGS (train_baseline.py, e.g. "--epochs 30"), TRAIN_ARGS (train.py; flags after the
# script name are added to it). Every other setting is the paper's (docs/train-imagenet-lt.md).
# Rerun the same command to continue: complete lists are kept and a run with checkpoints/last.pt resumes.
set -euo pipefail
source "$(dirname "$0")/flow_lib.sh"
DATA_ROOT="${DATA_ROOT:-${INLT:-${IMAGENET_ROOT:-}}}"
require DATA_ROOT "set it to the ImageNet-LT root (ImageNet_LT_{train,val,test}.txt and the images)"
require SYN "set it to the generation output folder scored by comp_clip_scores.py"
OUT="${OUT:-runs/imagenet_lt}"
LOSS="${LOSS:-ce}"
MODE="${MODE:-full}"
CURRICULUM="${CURRICULUM:-fixed}"
NPROC="${NPROC:-${GPUS:-1}}"
DATA="$OUT/data"
stage_args BUILD "${BUILD_ARGS:-}"
stage_args BASE "${BASELINE_ARGS:-}"
stage_args TRAIN "${TRAIN_ARGS:-}"
TRAIN+=("$@")

need_file DATA_ROOT "$DATA_ROOT/ImageNet_LT_train.txt" "the ImageNet-LT training list"
tables_complete "$DATA" || need_file SYN "$SYN/clip_scores.csv" "scored spectrum (comp_clip_scores.py writes it)"
[ -z "${INIT:-}" ] || need_file INIT "$INIT" "starting checkpoint"
[ "$LOSS" = ce ] || [ "$LOSS" = balanced_softmax ] || die "LOSS=$LOSS: expected ce or balanced_softmax"
[ "$MODE" = full ] || [ "$MODE" = onlyfc ] || die "MODE=$MODE: expected full or onlyfc"
not_a_file OUT "$OUT"
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || die "NPROC=$NPROC: expected a positive integer"
if [ "$NPROC" -gt 1 ] && [ "$(gpu_count)" -lt "$NPROC" ]; then
  die "NPROC=$NPROC but $(gpu_count) GPU(s) are visible"
fi
note_no_gpu

resume_flag() { if [ -f "$1/checkpoints/last.pt" ]; then echo --resume; fi; }

if tables_complete "$DATA"; then
  step "lists: $DATA is complete (delete it to rebuild)"
else
  step "lists -> $DATA"
  VAL=()
  [ "$CURRICULUM" = adaptive ] || VAL=(--val-size 0)  # no hold-out the schedule never probes
  "$PY" "$REPO/curriculum/ImageNet_LT/build_data.py" --data-root "$DATA_ROOT" --syn-path "$SYN" --output-dir "$DATA" \
    "${VAL[@]}" "${BUILD[@]}"
fi

if [ -z "${INIT:-}" ]; then
  # the paper starts from a model trained with CE on the real ImageNet-LT, whatever loss the curriculum uses
  BASELINE="$OUT/baseline_ce"
  step "baseline (CE, real data) -> $BASELINE"
  # shellcheck disable=SC2046  # resume_flag prints one flag or nothing
  launch "$NPROC" "$REPO/curriculum/ImageNet_LT/train_baseline.py" --data-root "$DATA_ROOT" --loss ce \
    --output-dir "$BASELINE" $(resume_flag "$BASELINE") "${BASE[@]}"
  INIT="$BASELINE/checkpoints/best.pt"
fi

RUN="$OUT/discl_${LOSS}_${MODE}"
[ "$CURRICULUM" = fixed ] || RUN="${RUN}_$CURRICULUM"
step "DisCL curriculum ($CURRICULUM, $LOSS, $MODE) from $INIT -> $RUN"
# shellcheck disable=SC2046
launch "$NPROC" "$REPO/curriculum/ImageNet_LT/train.py" --data-root "$DATA_ROOT" --train-table "$DATA/train.txt" \
  --val-table "$DATA/validate.txt" --init "$INIT" --train-mode "$MODE" --loss "$LOSS" --curriculum "$CURRICULUM" \
  --output-dir "$RUN" $(resume_flag "$RUN") "${TRAIN[@]}"
step "done: $RUN"
