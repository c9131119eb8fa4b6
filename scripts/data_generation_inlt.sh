#!/usr/bin/env bash
# DisCL Phase 1 on ImageNet-LT, the reference's flow: hard-sample CSV -> LLM prompts -> spectrum -> CLIPScore.
# Every step resumes: rerun this script after a crash or preemption and only missing work is done.
#   IMAGENET_ROOT=/data/imagenet OUTPUT=/data/imagenet_lt_syn OPENAI_API_KEY=... bash scripts/data_generation_inlt.sh
# Optional: HARD_CSV (default $OUTPUT/hard_imagenet_lt.csv; every image of the few-shot classes when missing),
# PROMPT_JSON (default $OUTPUT/prompts.json), PROMPT_BACKEND (openai | template, default openai),
# TOTAL_PARTS (default 1; see scripts/slurm/gene_img_array.sbatch), GEN_ARGS (extra gene_img.py flags).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
: "${IMAGENET_ROOT:?set IMAGENET_ROOT to the ImageNet root holding ImageNet_LT_train.txt and train/}"
: "${OUTPUT:?set OUTPUT to the output folder of the synthetic images}"
HARD_CSV="${HARD_CSV:-$OUTPUT/hard_imagenet_lt.csv}"
PROMPT_JSON="${PROMPT_JSON:-$OUTPUT/prompts.json}"
TOTAL_PARTS="${TOTAL_PARTS:-1}"
mkdir -p "$OUTPUT"

# 1. The hard images: the few-shot (tail) classes, the reference's effective rule (docs/hard-samples-and-prompts.md).
if [ ! -f "$HARD_CSV" ]; then
  "$PY" data_generation/make_hard_samples.py --dataset imagenet_lt --root "$IMAGENET_ROOT" \
    --list ImageNet_LT_train.txt --criterion none --tail-classes --output "$HARD_CSV"
fi

# 2. Ten scene descriptions per hard class from a chat model (resumes from an existing JSON).
"$PY" data_generation/ImageNet_LT/get_text_prompt.py --data_csv "$HARD_CSV" --prompt_json "$PROMPT_JSON" \
  --backend "${PROMPT_BACKEND:-openai}"

# 3. The spectrum at native image sizes, with the CLIP quality retry (similarity <= 0.3: up to 5 more prompts).
for part in $(seq 1 "$TOTAL_PARTS"); do
  # shellcheck disable=SC2086  # GEN_ARGS is a list of flags
  "$PY" data_generation/ImageNet_LT/gene_img.py --part "$part" --total-parts "$TOTAL_PARTS" \
    --data-csv "$HARD_CSV" --prompt-json "$PROMPT_JSON" --output-path "$OUTPUT" ${GEN_ARGS:-}
done

# 4. CLIPScore of every synthetic image against its prompt and its real source; threshold 0.30.
"$PY" data_generation/ImageNet_LT/comp_clip_scores.py --syn_path "$OUTPUT" --real_path "$IMAGENET_ROOT"
