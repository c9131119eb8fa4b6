# Stage 40 — FLYP on iWildCam with the adaptive guidance curriculum (usage: docs/train-iwildcam.md).
# Sourced by scripts/quickstart.sh with PY, RUN and WORLD set. Tiny on purpose: the tiny open_clip (random
# weights, 64 px) for 2 epochs on the mini iWildCam, so the F1 numbers only show that the flow works.
# Inputs: the training and curriculum-validation tables of the filtering stage ($RUN/data/iwildcam/).
# Outputs: $RUN/iwildcam/adaptive/ (stats.tsv, curriculum.tsv, summary.json, checkpoints/, *.png).
IW="$RUN/iwildcam"
IW_DATA="$RUN/data/iwildcam"
mkdir -p "$IW"
if [ ! -f "$IW_DATA/train.csv" ] || [ ! -f "$IW_DATA/validate.csv" ]; then
  echo "error: $IW_DATA/train.csv and validate.csv are missing (written by the filtering stage, 30-*.sh)" >&2
  return 1
fi
# Library logs go to a file (shown on failure); the tiny transformer runs fastest on one thread.
iw_run() { local log="$1"; shift; if ! OMP_NUM_THREADS=1 "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }

echo "-- adaptive curriculum: probe → real sample → probe → argmax level, real only from epoch 2 (train.py)"
rm -rf "$IW/adaptive"
iw_run "$IW/adaptive.log" "$PY" curriculum/iWildCam/train.py \
  --train-table "$IW_DATA/train.csv" --val-table "$IW_DATA/validate.csv" --data-root "$WORLD/iwildcam" \
  --output-dir "$IW/adaptive" --model discl-tiny-clip --pretrained "" --device cpu --workers 0 \
  --epochs 2 --curriculum adaptive --curriculum-epoch 2 --batch-size 16 --real-sample-size 32 \
  --lr 1e-4 --warmup 2 --eval-batch-size 64
echo "   stages: $IW/adaptive/curriculum.tsv; figures: $IW/adaptive/{curriculum_timeline,f1_curves}.png"
