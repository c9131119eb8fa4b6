#!/usr/bin/env bash
# DisCL Phase 1 on ImageNet-LT, the reference's flow: hard (tail) classes -> LLM prompts -> spectrum -> CLIPScore.
#   DATA_ROOT=/data/imagenet SYN=/data/syn/imagenet_lt OPENAI_API_KEY=... bash scripts/data_generation_inlt.sh
# DATA_ROOT is the ImageNet root holding ImageNet_LT_{train,val,test}.txt and the images they list.
# Step 1 writes $SYN/hard_samples.csv (HARD_CSV): every image of the few-shot classes, the rule the reference's
# training code in effect uses; no classifier is loaded (HARD_ARGS replaces "--criterion none --tail-classes").
# Step 2 asks a chat model for 10 scene descriptions per class into $SYN/prompts.json (PROMPT_JSON;
# PROMPT_BACKEND=template for the offline bank). Step 3 generates at native sizes with the CLIP quality retry,
# step 4 scores (threshold 0.30). Every other variable (TOTAL_PARTS, PARTS, NPROC, STEPS, DRY_RUN, PROMPT_ARGS,
# GEN_ARGS, SCORE_ARGS, PY) is scripts/data_generation.sh's; rerun the same command to resume.
set -euo pipefail
source "$(dirname "$0")/flow_lib.sh"
export DATASET=imagenet_lt
export DATA_ROOT="${DATA_ROOT:-${IMAGENET_ROOT:-${INLT:-}}}" SYN="${SYN:-${OUTPUT:-}}"
require DATA_ROOT "set it to the ImageNet root holding ImageNet_LT_train.txt"
require SYN "set it to the folder of the synthetic images"
[ -f "$DATA_ROOT/ImageNet_LT_train.txt" ] || die "DATA_ROOT=$DATA_ROOT holds no ImageNet_LT_train.txt"
export HARD_ARGS="${HARD_ARGS:---criterion none --tail-classes}"
export PROMPT_JSON="${PROMPT_JSON:-$SYN/prompts.json}"
exec bash "$(dirname "$0")/data_generation.sh"
