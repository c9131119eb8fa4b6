# Stage 70 — the paper's experiments as one command, on the tiny world (usage: docs/experiments.md).
# Sourced by scripts/quickstart.sh with PY, RUN and WORLD set. The tiny matrix experiments/tiny.toml: FLYP, FLYP + all
# levels mixed and FLYP + DisCL (adaptive, then WiSE-FT) × seeds 0 and 1, on the mini iWildCam with the tiny CLIP
# (random weights: the numbers only show that the flow works).
# Inputs: $RUN/data/iwildcam/{train,validate}.csv (stage 30), $RUN/gen/iwildcam (stage 20).
# Outputs: $RUN/experiments/tiny/<method>/seed<s>/ (the runs), $RUN/experiments/tiny/results/ (table.md, table.csv,
#          table.tex, runs.csv; curves, timelines, WiSE-FT curve, spectrum, CLIPScore distribution as PDF + PNG).
EXP="$RUN/experiments/tiny"
if [ ! -f "$RUN/data/iwildcam/train.csv" ] || [ ! -f "$RUN/data/iwildcam/validate.csv" ]; then
  echo "error: $RUN/data/iwildcam/train.csv and validate.csv are missing (written by the filtering stage, 30-*.sh)" >&2
  return 1
fi
rm -rf "$EXP"
mkdir -p "$EXP"
# Library logs go to a file (shown on failure); the tiny models run fastest on one thread.
ex_run() { local log="$1"; shift; if ! OMP_NUM_THREADS=1 "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }

echo "-- 3 methods × 2 seeds, 2 runs at a time; each run's folder, log and WiSE-FT (run_experiments.py)"
ex_run "$EXP/runner.log" "$PY" curriculum/run_experiments.py experiments/tiny.toml --jobs 2 | sed 's/^/   /'
echo "-- the same command again: complete runs are skipped (an interrupted one would be resumed)"
ex_run "$EXP/rerun.log" "$PY" curriculum/run_experiments.py experiments/tiny.toml | tail -1 | sed 's/^/   /'
echo "-- mean ± std over seeds, paired differences to FLYP with a 95% t interval, the paper's numbers (aggregate.py)"
ex_run "$EXP/aggregate.log" "$PY" curriculum/aggregate.py experiments/tiny.toml | sed 's/^/   /'
