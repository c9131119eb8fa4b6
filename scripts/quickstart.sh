#!/usr/bin/env bash
# README command 1: set up .venv if needed, then run DisCL end to end on the embedded tiny world
# (tiny models built from configs, mini iWildCam and ImageNet-LT in their real layouts) on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PY="$PWD/.venv/bin/python"
export RUN="${RUN:-$PWD/runs/quickstart}"
export WORLD="$RUN/world"
export HF_HOME="$WORLD/hf_home" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export TOKENIZERS_PARALLELISM=false
mkdir -p "$RUN"
echo "== tiny world: models under real ids in $HF_HOME, mini datasets in $WORLD"
"$PY" -m discl.tiny --out "$WORLD"
for stage in scripts/quickstart.d/*.sh; do
  [ -e "$stage" ] || continue
  echo "== $(basename "$stage" .sh)"
  source "$stage"
done
echo "== quickstart done: outputs in $RUN"
