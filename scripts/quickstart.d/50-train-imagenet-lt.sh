# Stage 50 — ImageNet-LT: plain baseline, then the guidance curriculum from it (usage: docs/train-imagenet-lt.md).
# Sourced by scripts/quickstart.sh with PY, RUN and WORLD set. Tiny on purpose: a 8-wide ResNet-10 on 32 px
# crops, 2 epochs each. The mini ImageNet-LT's tail is already more than 13.6 % of an epoch, so the demo
# raises --tail-fraction to 0.5 (and draws 20 % of the non-tail images) to make synthetic images enter training.
# Outputs: $RUN/imagenet_lt/{baseline,curriculum}/ (stats.tsv, summary.json, checkpoints/{best,last}.pt, *.png).
LT="$RUN/imagenet_lt"
LT_DATA="$RUN/data/imagenet_lt"   # written by the filtering stage (curriculum/ImageNet_LT/build_data.py)
mkdir -p "$LT"
if [ ! -f "$LT_DATA/train.txt" ]; then
  echo "error: $LT_DATA/train.txt is missing (written by the filtering stage, 30-*.sh)" >&2
  return 1
fi
# Library logs go to a file (shown on failure); tiny convolutions run fastest on one thread.
lt_run() { local log="$1"; shift; if ! OMP_NUM_THREADS=1 "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }
LT_TINY=(--data-root "$WORLD/imagenet_lt" --width 8 --crop-size 32 --resize-size 36 --batch-size 32
         --workers 0 --device cpu --epochs 2)

echo "-- baseline: plain CE on the real long-tailed list, 2 epochs (train_baseline.py)"
rm -rf "$LT/baseline"
lt_run "$LT/baseline.log" "$PY" curriculum/ImageNet_LT/train_baseline.py "${LT_TINY[@]}" --output-dir "$LT/baseline"

# the lowest synthetic guidance the filtering stage kept, then real: synthetic → real in two epochs
LT_LOW=$(awk '$3 < 100 {print $3}' "$LT_DATA/train.txt" | sort -n | head -1)
echo "-- curriculum from the baseline: guidance $LT_LOW in epoch 0, real in epoch 1 (train.py, Balanced Softmax)"
rm -rf "$LT/curriculum"
lt_run "$LT/curriculum.log" "$PY" curriculum/ImageNet_LT/train.py "${LT_TINY[@]}" --output-dir "$LT/curriculum" \
  --train-table "$LT_DATA/train.txt" --init "$LT/baseline/checkpoints/best.pt" --loss balanced_softmax \
  --curriculum fixed --guidance-levels "$LT_LOW" 100 --level-starts 0 1 --curriculum-epoch 2 \
  --downsample-ratio 0.2 --tail-fraction 0.5
echo "   images per guidance level (guidance:count) in each epoch:"
awk -F'\t' 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "guidance_rows") c = i; next}
             {print "   epoch " $1 ": " $c}' "$LT/curriculum/stats.tsv"
echo "   figures: $LT/curriculum/{metrics_val,metrics_test,overall_curves,curriculum_timeline}.png"
