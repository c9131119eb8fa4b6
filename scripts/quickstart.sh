#!/usr/bin/env bash
# README command 1: set up .venv if needed, then run DisCL end to end on CPU: first on the digits world (small
# models trained on real handwritten digits, installed under the real ids: docs/digits-world.md), then on the tiny
# world (random tiny models, mini iWildCam / ImageNet-LT / ImageFolder roots in their real layouts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
echo "== set-up: $SECONDS s"
export PY="$PWD/.venv/bin/python"
export RUN="${RUN:-$PWD/runs/quickstart}"
export WORLD="$RUN/world"
# The digits world: its own HF_HOME (the trained models under the real ids), a long-tailed ImageFolder root, and
# the open_clip weights of its CLIP (for hard samples and FLYP). Stages pass HF_HOME="$DIGITS_HF" to its commands.
export DIGITS_HF="$WORLD/digits/hf_home" DIGITS_LT="$WORLD/digits/lt"
DIGITS_CLIP=(--model discl-digits-clip --pretrained "$DIGITS_HF/open_clip_weights/discl-digits-clip.safetensors")
export HF_HOME="$WORLD/hf_home" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export TOKENIZERS_PARALLELISM=false
mkdir -p "$RUN"
echo "== worlds: tiny models under real ids in $HF_HOME, trained digits models in $DIGITS_HF, datasets in $WORLD"
"$PY" -m discl.tiny --out "$WORLD"
for stage in scripts/quickstart.d/*.sh; do
  [ -e "$stage" ] || continue
  echo "== $(basename "$stage" .sh)"
  _stage_start=$SECONDS
  source "$stage"
  echo "   ($(basename "$stage" .sh): $((SECONDS - _stage_start)) s)"
done
echo "== quickstart done in $((SECONDS / 60)) min $((SECONDS % 60)) s (set-up included): outputs in $RUN"
