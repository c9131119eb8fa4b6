# Stage 30 — CLIPScore filtering and the curriculum training data (usage: docs/filtering-and-training-data.md).
# Sourced by scripts/quickstart.sh with PY, RUN and WORLD set. Inputs: the generation outputs of stage 20
# ($RUN/gen/iwildcam, $RUN/gen/imagenet_lt). The CLIP is the tiny one under the real id (random weights), so
# the similarities only show that the flow works.
# Outputs: scores, reference pickles, filter reports and histograms in $RUN/gen/<dataset>/;
#          $RUN/data/<dataset>/{train,validate}.csv (every dataset) and, in the reference's list format,
#          $RUN/data/imagenet_lt/{train,validate}.txt + data_roots.json (stages 40, 50).
FD_DATA="$RUN/data"
mkdir -p "$FD_DATA"
for dataset in iwildcam imagenet_lt; do
  if ! compgen -G "$RUN/gen/$dataset/manifests/*.csv" >/dev/null; then
    echo "error: $RUN/gen/$dataset/manifests/ is missing (written by the generation stage, 20-*.sh)" >&2
    return 1
  fi
done
# Library logs go to a file; on failure they are shown.
fd_run() { local log="$1"; shift; if ! OMP_NUM_THREADS=1 "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }

echo "-- iWildCam: image–text and image–image CLIPScore, threshold 0.25 (comp_clip_scores.py)"
fd_run "$FD_DATA/iwildcam_scores.log" "$PY" data_generation/iWildCam/comp_clip_scores.py \
  --syn_path "$RUN/gen/iwildcam" --real_path "$WORLD/iwildcam/iwildcam_v2.0/train" --device cpu --batch-size 32
echo "-- iWildCam: training table (guidance >= 50, two captions per row) and curriculum-validation table"
fd_run "$FD_DATA/iwildcam_build.log" "$PY" curriculum/iWildCam/build_data.py --syn_path "$RUN/gen/iwildcam" \
  --data-root "$WORLD/iwildcam" --save_folder "$FD_DATA/iwildcam" --val-size 4
echo "-- iWildCam again: a rerun finds every embedding in the cache"
fd_run "$FD_DATA/iwildcam_rescore.log" "$PY" data_generation/iWildCam/comp_clip_scores.py \
  --syn_path "$RUN/gen/iwildcam" --real_path "$WORLD/iwildcam/iwildcam_v2.0/train" --device cpu | tail -1

echo "-- ImageNet-LT: CLIPScore against each image's LLM prompt, threshold 0.30"
fd_run "$FD_DATA/imagenet_lt_scores.log" "$PY" data_generation/ImageNet_LT/comp_clip_scores.py \
  --syn_path "$RUN/gen/imagenet_lt" --real_path "$WORLD/imagenet_lt" --device cpu --batch-size 32
# A random tiny CLIP scores long LLM prompts far below 0.30, which would leave no synthetic data for the
# training demo; the builder's --threshold re-filters without re-scoring (-1 keeps every image).
echo "-- ImageNet-LT: list files for guidance 10, 30, 50 + real (demo: --threshold -1, see the comment above)"
fd_run "$FD_DATA/imagenet_lt_build.log" "$PY" curriculum/ImageNet_LT/build_data.py --syn_path "$RUN/gen/imagenet_lt" \
  --data-root "$WORLD/imagenet_lt" --save_folder "$FD_DATA/imagenet_lt" --val-size 2 --threshold -1
echo "   training data for stage 40: $FD_DATA/iwildcam/train.csv, validate.csv"
echo "   training data for stage 50: $FD_DATA/imagenet_lt/train.csv, validate.csv (reference lists: train.txt, validate.txt)"
echo "   score histograms: $RUN/gen/iwildcam/clip_scores_hist.png, $RUN/gen/imagenet_lt/clip_scores_hist.png"
