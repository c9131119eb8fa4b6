# Stage 50 — CE / Balanced Softmax: plain baseline, then the guidance curriculum from it (usage:
# docs/train-imagenet-lt.md). Sourced by scripts/quickstart.sh with PY, RUN, WORLD and the DIGITS_* variables set.
# First on the long-tailed digits: a CE baseline, then CE + DisCL (adaptive) from it; each adaptive round's scores
# (mean gain of p(true class) on the curriculum-validation digits per level) and its choice are printed, and the
# few-shot accuracy before and after (docs/digits-world.md has the 5-seed experiment). Then the ImageNet-LT flow on
# the mini world, tiny on purpose: a 8-wide ResNet-10 on 32 px crops, 2 epochs each. The mini ImageNet-LT's tail is
# already more than 13.6 % of an epoch, so that demo raises --tail-fraction to 0.5 (and draws 20 % of the non-tail
# images) to make synthetic images enter training.
# Outputs: $RUN/imagenet_lt/{digits_ce,digits_discl,baseline,curriculum}/ (stats.tsv, summary.json, checkpoints/,
#          *.png).
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

DIGITS_CE=(--trainer ce --dataset folder --data-root "$DIGITS_LT" --train-table "$RUN/data/digits/train.csv"
           --width 16 --crop-size 32 --resize-size 32 --batch-size 32 --workers 0 --device cpu --no-tensorboard)
echo "-- digits: CE baseline on the real long-tailed digits, 16-wide ResNet-10 on 32 px, 20 epochs (train.py)"
rm -rf "$LT/digits_ce" "$LT/digits_discl"
lt_run "$LT/digits_ce.log" "$PY" curriculum/train.py "${DIGITS_CE[@]}" --output-dir "$LT/digits_ce" --epochs 20 \
  --curriculum none --stage-data replace-hard | tail -1 | sed 's/^/   /'
echo "-- digits: CE + DisCL (adaptive) from it, 10 epochs: ~14 % of each epoch from the few-shot classes (train.py)"
lt_run "$LT/digits_discl.log" "$PY" curriculum/train.py "${DIGITS_CE[@]}" --output-dir "$LT/digits_discl" \
  --epochs 10 --init "$LT/digits_ce/checkpoints/best.pt" --curriculum adaptive --guidance-levels 10 30 50 100 \
  --curriculum-epoch 9 --val-table "$RUN/data/digits/validate.csv" --real-sample-size 128 --stage-data tail-topup \
  --downsample-ratio 1.0 | tail -1 | sed 's/^/   /'
echo "   adaptive rounds (score per level = mean gain of p(true class) after a real pass; the argmax is trained on):"
awk -F'\t' 'NR > 1 && $4 == "level" && $7 != "" {printf "   epoch %5.2f  chose %3s   %s\n", $3, $5, $7}' \
  "$LT/digits_discl/curriculum.tsv"

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
