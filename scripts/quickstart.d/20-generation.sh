# Stage 20 — the synthetic-to-real spectrum of the hard images (usage: docs/generation.md).
# Sourced by scripts/quickstart.sh with PY, RUN and WORLD set. The diffusion model is the tiny SDXL refiner under
# the real id (random weights, so the images are noise-like); sizes are tiny: 64x36 / native 48x48, 4 steps.
# Inputs: $RUN/hard_samples/{iwildcam,imagenet_lt}.csv and imagenet_lt_prompts.json (stage 10).
# Outputs: $RUN/gen/{iwildcam,imagenet_lt}/<class>/Strength*_guidance100_seed*/<image>.jpg, manifests/, spectrum.png.
GEN="$RUN/gen"
HS="$RUN/hard_samples"
for input in "$HS/iwildcam.csv" "$HS/imagenet_lt.csv" "$HS/imagenet_lt_prompts.json"; do
  if [ ! -f "$input" ]; then
    echo "error: $input is missing (written by the hard-sample stage, 10-*.sh)" >&2
    return 1
  fi
done
mkdir -p "$GEN"
# Library logs go to a file (shown on failure); the tiny models run fastest on one thread.
gen_run() { local log="$1"; shift; if ! OMP_NUM_THREADS=1 "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }
GEN_TINY=(--seeds 10 20 --steps 4 --batch-size 16 --device cpu)

echo "-- iWildCam: strengths 0.3, 0.5 (guidance 70, 50: what training keeps) x seeds 10, 20, as 2 parts"
for part in 1 2; do
  gen_run "$GEN/iwildcam_part$part.log" "$PY" data_generation/iWildCam/gene_img.py --data_csv "$HS/iwildcam.csv" \
    --output_path "$GEN/iwildcam" --part "$part" --total_parts 2 --strengths 0.3 0.5 --resolution 64x36 \
    "${GEN_TINY[@]}" | sed 's/^/   /'
done
echo "-- iWildCam again: a rerun (or a restart after a kill) makes only what is missing"
gen_run "$GEN/iwildcam_rerun.log" "$PY" data_generation/iWildCam/gene_img.py --data_csv "$HS/iwildcam.csv" \
  --output_path "$GEN/iwildcam" --part 1 --total_parts 2 --strengths 0.3 0.5 --resolution 64x36 \
  "${GEN_TINY[@]}" | sed 's/^/   /'

echo "-- ImageNet-LT: strengths 0.5, 0.7, 0.9 (guidance 50, 30, 10), native size, CLIP retry (demo: 1 extra try)"
gen_run "$GEN/imagenet_lt.log" "$PY" data_generation/ImageNet_LT/gene_img.py --data_csv "$HS/imagenet_lt.csv" \
  --prompt_json "$HS/imagenet_lt_prompts.json" --output_path "$GEN/imagenet_lt" --strengths 0.5 0.7 0.9 \
  --max-retries 1 "${GEN_TINY[@]}" | sed 's/^/   /'

for dataset in iwildcam imagenet_lt; do
  gen_run "$GEN/${dataset}_figure.log" "$PY" data_generation/plot_spectrum.py --output_path "$GEN/$dataset" \
    --rows 3 | sed 's/^/   /'
done
