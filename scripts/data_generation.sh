#!/usr/bin/env bash
# DisCL Phase 1 on any registered dataset: hard samples -> [LLM prompts] -> spectrum (every part) -> CLIPScore.
#   DATASET=folder DATA_ROOT=/data/my_images SYN=/data/syn/my_images bash scripts/data_generation.sh
# Rerun the same command after a crash or preemption: each step resumes (the hard-sample CSV is kept once
# written, prompts and images already made are skipped, CLIPScore reuses its embedding cache).
#
# Required: DATASET (a registered name or a module), DATA_ROOT (its root), SYN (the synthetic-image folder).
# Optional (defaults in brackets):
#   HARD_CSV [$SYN/hard_samples.csv]  the hard-sample CSV; step 1 writes it when missing (an existing one is used)
#   PROMPT_JSON                       run the LLM prompt step and generate with its prompts (ImageNet-LT style)
#   PROMPT_BACKEND [openai]           openai (OPENAI_API_KEY) or template (offline)
#   TOTAL_PARTS [1], PARTS [1..TOTAL_PARTS]  shards of the classes, and which of them this machine generates
#   NPROC [1]                         processes (GPUs) per part on this node (torchrun)
#   STEPS [hard prompts generate score]  the steps to run, e.g. STEPS=score after a SLURM array generated
#   DRY_RUN=1                         print what the hard-sample and generation steps would do; load no model
#   Per-step flags (shell words; quotes work: HARD_ARGS="--pretrained ''"): HARD_ARGS (make_hard_samples.py),
#   PROMPT_ARGS (get_text_prompt.py), GEN_ARGS (gene_img.py), SCORE_ARGS (comp_clip_scores.py).
#   PY [.venv/bin/python of this repository]
set -euo pipefail
source "$(dirname "$0")/flow_lib.sh"

require DATASET "set it to a registered dataset (iwildcam, imagenet_lt, folder) or a module that registers one"
require DATA_ROOT "set it to the dataset root"
require SYN "set it to the folder of the synthetic images"
HARD_CSV="${HARD_CSV:-$SYN/hard_samples.csv}"
PROMPT_BACKEND="${PROMPT_BACKEND:-openai}"
TOTAL_PARTS="${TOTAL_PARTS:-1}"
PARTS="${PARTS:-$(seq -s ' ' 1 "$TOTAL_PARTS")}"
NPROC="${NPROC:-1}"
stage_args HARD "${HARD_ARGS:-}"
stage_args PROMPT "${PROMPT_ARGS:-}"
stage_args GEN "${GEN_ARGS:-}"
stage_args SCORE "${SCORE_ARGS:-}"

# Inputs first: nothing heavy starts on a typo.
[ -e "$DATA_ROOT" ] || die "DATA_ROOT=$DATA_ROOT: dataset root not found"
not_a_file SYN "$SYN"
[[ "$TOTAL_PARTS" =~ ^[1-9][0-9]*$ ]] || die "TOTAL_PARTS=$TOTAL_PARTS: expected a positive integer"
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || die "NPROC=$NPROC: expected a positive integer"
for part in $PARTS; do
  [[ "$part" =~ ^[0-9]+$ ]] && [ "$part" -ge 1 ] && [ "$part" -le "$TOTAL_PARTS" ] \
    || die "PARTS: part $part is not in 1..$TOTAL_PARTS"
done
if [ -n "${PROMPT_JSON:-}" ] && wants prompts && [ -z "${DRY_RUN:-}" ]; then
  [ "$PROMPT_BACKEND" = openai ] || [ "$PROMPT_BACKEND" = template ] \
    || die "PROMPT_BACKEND=$PROMPT_BACKEND: expected openai or template"
  if [ "$PROMPT_BACKEND" = openai ] && [ -z "${OPENAI_API_KEY:-}" ] && [[ " ${PROMPT[*]} " != *" --base-url "* ]]; then
    die "PROMPT_BACKEND=openai needs OPENAI_API_KEY (or PROMPT_ARGS=\"--base-url URL\", or PROMPT_BACKEND=template)"
  fi
fi
[ -n "${DRY_RUN:-}" ] || note_no_gpu
PROMPTS=()
[ -z "${PROMPT_JSON:-}" ] || PROMPTS=(--prompt-json "$PROMPT_JSON")

# 1. The hard images (docs/hard-samples-and-prompts.md); an existing CSV is kept.
if wants hard && [ ! -f "$HARD_CSV" ]; then
  step "hard samples -> $HARD_CSV"
  if [ -n "${DRY_RUN:-}" ]; then
    "$PY" "$REPO/data_generation/make_hard_samples.py" --dataset "$DATASET" --data-root "$DATA_ROOT" \
      --output "$HARD_CSV" --dry-run "${HARD[@]}"
    echo "dry run: the generation estimate needs $HARD_CSV; run step 1 (STEPS=hard), then DRY_RUN=1 again"
    exit 0
  fi
  "$PY" "$REPO/data_generation/make_hard_samples.py" --dataset "$DATASET" --data-root "$DATA_ROOT" \
    --output "$HARD_CSV" "${HARD[@]}"
fi
if wants generate || wants prompts; then
  need_file HARD_CSV "$HARD_CSV" "hard-sample CSV (step 1 writes it)"
fi

# 2. Scene descriptions per hard class from a chat model (resumes from an existing JSON).
if [ -n "${PROMPT_JSON:-}" ] && wants prompts && [ -z "${DRY_RUN:-}" ]; then
  step "prompts -> $PROMPT_JSON"
  "$PY" "$REPO/data_generation/ImageNet_LT/get_text_prompt.py" --dataset "$DATASET" --data-csv "$HARD_CSV" \
    --prompt-json "$PROMPT_JSON" --backend "$PROMPT_BACKEND" "${PROMPT[@]}"
fi

# 3. The spectrum, part by part (the dataset's defaults: model, strengths x seeds, size, quality retry).
if wants generate; then
  DRY=()
  [ -z "${DRY_RUN:-}" ] || DRY=(--dry-run)
  for part in $PARTS; do
    step "spectrum part $part/$TOTAL_PARTS -> $SYN"
    launch "$NPROC" "$REPO/data_generation/gene_img.py" --dataset "$DATASET" --data-root "$DATA_ROOT" \
      --data-csv "$HARD_CSV" --output-dir "$SYN" --part "$part" --total-parts "$TOTAL_PARTS" \
      "${PROMPTS[@]}" "${DRY[@]}" "${GEN[@]}"
  done
fi
[ -z "${DRY_RUN:-}" ] || exit 0

# 4. CLIPScore of every synthetic image against its prompt and its real source; the dataset's threshold.
if wants score; then
  step "CLIPScore -> $SYN/clip_scores.csv"
  "$PY" "$REPO/data_generation/comp_clip_scores.py" --dataset "$DATASET" --data-root "$DATA_ROOT" \
    --syn-path "$SYN" "${SCORE[@]}"
fi
step "done: $SYN"
