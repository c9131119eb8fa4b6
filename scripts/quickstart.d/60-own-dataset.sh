# Stage 60 — DisCL on your own data: every phase on an ImageFolder root with --dataset folder
# (usage: docs/own-dataset.md). Sourced by scripts/quickstart.sh with PY, RUN and WORLD set.
# Input: $WORLD/folder (train/ val/ test/<class>/IMG_*.jpg, 5 long-tailed classes, 48x32 photos).
# Outputs: $RUN/own/{hard.csv,gen/,data/,flyp/,ce/}. Tiny random models, so numbers only show that the flow works.
OWN="$RUN/own"
OWN_ROOT="$WORLD/folder"
if [ ! -d "$OWN_ROOT/train" ]; then
  echo "error: $OWN_ROOT/train is missing (python -m discl.tiny --out \$WORLD builds it)" >&2
  return 1
fi
rm -rf "$OWN"
mkdir -p "$OWN"
# Library logs go to a file (shown on failure); the tiny models run fastest on one thread.
own_run() { local log="$1"; shift; if ! OMP_NUM_THREADS=1 "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }
OWN_DATA=(--dataset folder --data-root "$OWN_ROOT")

"$PY" -c 'import sys; from discl.datasets import get_dataset
d = get_dataset("folder", sys.argv[1])
print("   classes (train images): " + ", ".join(f"{n} ({c})" for n, c in zip(d.text_names(), d.class_counts()))
      + "; evaluated on " + " and ".join(d.eval_splits) + f", epoch selected on {d.selection_split} {d.selection_metric}")' \
  "$OWN_ROOT"

echo "-- hard samples: misclassified by the (random) tiny CLIP zero-shot head, at most 2 per class"
own_run "$OWN/hard.log" "$PY" data_generation/make_hard_samples.py "${OWN_DATA[@]}" --criterion misclassified \
  --per-class-cap 2 --model discl-tiny-clip --pretrained "" --device cpu --workers 0 --output "$OWN/hard.csv" \
  | sed 's/^/   /'

echo "-- spectrum: strengths 0.5, 0.9 (guidance 50, 10), native 48x32, prompt 'a photo of a {class}'"
own_run "$OWN/gen.log" "$PY" data_generation/gene_img.py "${OWN_DATA[@]}" --data-csv "$OWN/hard.csv" \
  --output-path "$OWN/gen" --strengths 0.5 0.9 --seeds 10 --steps 4 --batch-size 16 --device cpu \
  | sed 's/^/   /'

echo "-- CLIPScore of each image against its prompt (threshold 0.25)"
own_run "$OWN/scores.log" "$PY" data_generation/comp_clip_scores.py "${OWN_DATA[@]}" --syn-path "$OWN/gen" \
  --real-path "$OWN_ROOT" --device cpu --workers 0 | tail -1 | sed 's/^/   /'

# A random tiny CLIP scores every image below 0.25; --threshold -1 keeps them so training sees synthetic rows.
echo "-- training tables (demo: --threshold -1, see the comment above)"
own_run "$OWN/build.log" "$PY" curriculum/build_data.py "${OWN_DATA[@]}" --syn-path "$OWN/gen" \
  --save-folder "$OWN/data" --threshold -1 | tail -1 | sed 's/^/   /'

OWN_TRAIN=(--train-table "$OWN/data/train.csv" --val-table "$OWN/data/validate.csv" --epochs 2
           --curriculum-epoch 2 --batch-size 16 --workers 0 --device cpu --eval-batch-size 64)
echo "-- FLYP (tiny CLIP), adaptive curriculum, 2 epochs; selected on val top1"
own_run "$OWN/flyp.log" "$PY" curriculum/train.py --trainer flyp "${OWN_DATA[@]}" "${OWN_TRAIN[@]}" \
  --output-dir "$OWN/flyp" --curriculum adaptive --real-sample-size 16 --model discl-tiny-clip --pretrained "" \
  --lr 1e-3 --wd 0 --warmup 2 | tail -1 | sed 's/^/   /'
echo "-- CE (8-wide ResNet-10, Balanced Softmax), guidance 10 → 50 → real, 2 epochs"
own_run "$OWN/ce.log" "$PY" curriculum/train.py --trainer ce "${OWN_DATA[@]}" "${OWN_TRAIN[@]}" \
  --output-dir "$OWN/ce" --curriculum fixed --guidance-levels 10 50 100 --level-starts --stage-data replace-hard \
  --loss balanced_softmax --width 8 --crop-size 32 --resize-size 36 | tail -1 | sed 's/^/   /'
echo "   runs: $OWN/{flyp,ce}/ (stats.tsv, curriculum.tsv, summary.json, checkpoints/, figures)"
