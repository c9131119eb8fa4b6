#!/usr/bin/env bash
# The digits experiment as one command (docs/digits-world.md): DisCL with CE and Balanced Softmax on the long-tailed
# handwritten digits of the digits world, 10 methods × 5 seeds (experiments/digits.toml), on CPU.
#   bash scripts/digits_experiment.sh                 # outputs in runs/digits/; JOBS=2 runs at a time
#   RUN=/tmp/digits JOBS=4 bash scripts/digits_experiment.sh
# Every step resumes: rerun the same command after an interruption and only what is missing is done.
# Steps: the world (committed weights installed under the real ids, the long-tailed ImageFolder root) → hard samples
# (every image of the two few-shot classes, the ImageNet-LT rule) → the spectrum (strengths 0.1 … 1.0 × the paper's
# 8 seeds, text guidance 10, 50 steps) → CLIPScore (keep ≥ 0.5) → training tables (4 curriculum-validation digits)
# → the runs → the table (RUN/experiments/digits/results/table.md) and figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY="$PWD/.venv/bin/python"
export RUN="${RUN:-$PWD/runs/digits}"
JOBS="${JOBS:-2}"
WORLD="$RUN/world"
LT="$WORLD/digits/lt"
export HF_HOME="$WORLD/digits/hf_home" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1  # small models: one thread per process
mkdir -p "$RUN"
DIGITS=(--dataset folder --data-root "$LT")

echo "== the digits world in $WORLD"
"$PY" -m discl.tiny --out "$WORLD" --digits-only 2>"$RUN/world.log" | tail -1
echo "== hard samples: every image of the few-shot classes"
"$PY" data_generation/make_hard_samples.py "${DIGITS[@]}" --criterion none --tail-classes --output "$RUN/hard.csv" \
  2>"$RUN/hard.log" | tail -1
echo "== spectrum: strengths 0.1 … 1.0 × seeds 10 … 70, text guidance 10, 50 steps (the paper's defaults), 16 px"
"$PY" data_generation/gene_img.py "${DIGITS[@]}" --data-csv "$RUN/hard.csv" --output-path "$RUN/gen" --device cpu \
  --batch-size 32 --jpeg-quality 95 2>"$RUN/gen.log" | tail -1
echo "== CLIPScore: keep an image when its similarity to its prompt is >= 0.5"
"$PY" data_generation/comp_clip_scores.py "${DIGITS[@]}" --syn-path "$RUN/gen" --device cpu --workers 0 \
  --threshold 0.5 2>"$RUN/scores.log" | tail -1
echo "== training tables"
"$PY" curriculum/build_data.py "${DIGITS[@]}" --syn-path "$RUN/gen" --save-folder "$RUN/data" --val-size 4 \
  2>"$RUN/build.log" | tail -1
echo "== 10 methods × 5 seeds, $JOBS at a time (run_experiments.py; logs in each run's experiment.log)"
"$PY" curriculum/run_experiments.py experiments/digits.toml --jobs "$JOBS" 2>"$RUN/runner.log" | tail -3
echo "== the table: mean ± std over seeds, paired differences to CE / Balanced Softmax with 95% t intervals"
"$PY" curriculum/aggregate.py experiments/digits.toml 2>"$RUN/aggregate.log"
