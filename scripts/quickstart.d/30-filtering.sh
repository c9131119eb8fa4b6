# Stage 30 — CLIPScore filtering and the curriculum training data (usage: docs/filtering-and-training-data.md).
# Sourced by scripts/quickstart.sh with PY, RUN, WORLD and the DIGITS_* variables set. Inputs: the generation
# outputs of stage 20 ($RUN/gen/{digits,digits_no_cfg,iwildcam,imagenet_lt}). On the digits the CLIP is the trained
# one under the real id, threshold 0.5: of the 500 held-out test digits, 97.6 % score >= 0.5 with their own class's
# prompt and 97 % score < 0.5 with every other class's (docs/digits-world.md); on the mini worlds it is the tiny
# one with random weights, so the similarities there only show that the flow works.
# Outputs: scores, reference pickles, filter reports and histograms in $RUN/gen/<dataset>/;
#          $RUN/data/<dataset>/{train,validate}.csv (every dataset) and, in the reference's list format,
#          $RUN/data/imagenet_lt/{train,validate}.txt + data_roots.json (stages 40, 50).
FD_DATA="$RUN/data"
mkdir -p "$FD_DATA"
for dataset in digits digits_no_cfg iwildcam imagenet_lt; do
  if ! compgen -G "$RUN/gen/$dataset/manifests/*.csv" >/dev/null; then
    echo "error: $RUN/gen/$dataset/manifests/ is missing (written by the generation stage, 20-*.sh)" >&2
    return 1
  fi
done
# Library logs go to a file; on failure they are shown.
fd_run() { local log="$1"; shift; if ! OMP_NUM_THREADS=1 "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }

DIGITS_DATA=(--dataset folder --data-root "$DIGITS_LT")
echo "-- digits: image–text and image–image CLIPScore with the trained CLIP, threshold 0.5 (comp_clip_scores.py)"
for gen in digits digits_no_cfg; do
  fd_run "$FD_DATA/${gen}_scores.log" env HF_HOME="$DIGITS_HF" "$PY" data_generation/comp_clip_scores.py \
    "${DIGITS_DATA[@]}" --syn-path "$RUN/gen/$gen" --threshold 0.5 --device cpu --workers 0 | tail -1 \
    | sed "s/^/   $gen: /"
done
echo "-- digits: what the filter drops — images the CLIP no longer sees as their prompt's digit"
fd_run "$FD_DATA/digits_lost.log" env HF_HOME="$DIGITS_HF" "$PY" - "$RUN/gen" <<'PYEOF'
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from discl.models import load_hf_clip
from discl.tiny.digits.data import DIGIT_NAMES
from discl.tiny.digits.evaluate import class_scores

model, processor = load_hf_clip(device="cpu")
print("   text guidance  strength   kept / images   another digit for the CLIP: dropped, kept")
for gen, scale in (("digits", 10), ("digits_no_cfg", 1)):
    scores = pd.read_csv(Path(sys.argv[1]) / gen / "clip_scores.csv")
    images = [Image.open(Path(sys.argv[1]) / gen / path).convert("RGB") for path in scores["synthetic_path"]]
    labels = np.array([DIGIT_NAMES.index(name) for name in scores["class_name"]])
    scores["lost"] = class_scores(model, processor, images).argmax(axis=1) != labels
    for strength, rows in scores.groupby("strength"):
        kept = rows["keep"].astype(bool)
        print(f"   {scale:13d}  {strength:8.1f}   {int(kept.sum()):4d} / {len(rows):<4d}   "
              f"{int(rows['lost'][~kept].sum()):28d}, {int(rows['lost'][kept].sum())}")
PYEOF
echo "-- digits: training table (every level, one caption per row) and 4 curriculum-validation digits"
fd_run "$FD_DATA/digits_build.log" env HF_HOME="$DIGITS_HF" "$PY" curriculum/build_data.py "${DIGITS_DATA[@]}" \
  --syn-path "$RUN/gen/digits" --save-folder "$FD_DATA/digits" --val-size 4 | tail -1 | sed 's/^/   /'

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
