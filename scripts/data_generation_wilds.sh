#!/usr/bin/env bash
# DisCL Phase 1 on iWildCam, the reference's flow: hard-sample CSV -> spectrum (every part) -> CLIPScore.
# Every step resumes: rerun this script after a crash or preemption and only missing work is done.
#   WILDS_ROOT=/data/wilds OUTPUT=/data/iwildcam_syn bash scripts/data_generation_wilds.sh
# Optional: HARD_CSV (default $OUTPUT/hard_iwildcam.csv; made with the zero-shot ViT-B/16 when missing),
# TOTAL_PARTS (default 1; run parts in parallel on several nodes with scripts/slurm/gene_img_array.sbatch),
# GEN_ARGS (extra gene_img.py flags, e.g. "--strengths 0.1 0.2 0.3 0.4 0.5" for what the tables keep).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
: "${WILDS_ROOT:?set WILDS_ROOT to the WILDS root dir (the folder holding iwildcam_v2.0/)}"
: "${OUTPUT:?set OUTPUT to the output folder of the synthetic images}"
HARD_CSV="${HARD_CSV:-$OUTPUT/hard_iwildcam.csv}"
TOTAL_PARTS="${TOTAL_PARTS:-1}"
mkdir -p "$OUTPUT"

# 1. The hard images: misclassified by the zero-shot CLIP (docs/hard-samples-and-prompts.md).
if [ ! -f "$HARD_CSV" ]; then
  "$PY" data_generation/make_hard_samples.py --dataset iwildcam --root "$WILDS_ROOT" \
    --criterion misclassified --output "$HARD_CSV"
fi

# 2. The spectrum: SDXL refiner img2img, strengths 0.1..1.0 x seeds 10..70 (paper defaults), part by part.
for part in $(seq 1 "$TOTAL_PARTS"); do
  # shellcheck disable=SC2086  # GEN_ARGS is a list of flags
  "$PY" data_generation/iWildCam/gene_img.py --part "$part" --total-parts "$TOTAL_PARTS" \
    --data-csv "$HARD_CSV" --output-path "$OUTPUT" ${GEN_ARGS:-}
done

# 3. CLIPScore of every synthetic image against its prompt and its real source; threshold 0.25.
"$PY" data_generation/iWildCam/comp_clip_scores.py --syn_path "$OUTPUT" --real_path "$WILDS_ROOT/iwildcam_v2.0/train"
