# Stage 20 — the synthetic-to-real spectrum of the hard images (usage: docs/generation.md).
# Sourced by scripts/quickstart.sh with PY, RUN, WORLD and the DIGITS_* variables set. On the digits the model is the
# trained refiner-layout pipeline (16 px, 20 steps): $RUN/gen/digits/spectrum.png shows each hard digit go from the
# real image (right) to a prototypical digit of its class (left). On the mini worlds it is the tiny SDXL refiner
# with random weights (noise-like images); sizes there are tiny: 64x36 / native 48x48, 4 steps.
# Inputs: $RUN/hard_samples/{digits,iwildcam,imagenet_lt}.csv and imagenet_lt_prompts.json (stage 10).
# Outputs: $RUN/gen/<dataset>/<class>/Strength*_guidance*_seed*/<image>.jpg, manifests/, spectrum.png;
#          $RUN/gen/digits_no_cfg/ (the same digits without classifier-free guidance, for the filter in stage 30).
GEN="$RUN/gen"
HS="$RUN/hard_samples"
for input in "$HS/digits.csv" "$HS/iwildcam.csv" "$HS/imagenet_lt.csv" "$HS/imagenet_lt_prompts.json"; do
  if [ ! -f "$input" ]; then
    echo "error: $input is missing (written by the hard-sample stage, 10-*.sh)" >&2
    return 1
  fi
done
mkdir -p "$GEN"
# Library logs go to a file (shown on failure); the tiny models run fastest on one thread.
gen_run() { local log="$1"; shift; if ! OMP_NUM_THREADS=1 "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }
GEN_TINY=(--seeds 10 20 --steps 4 --batch-size 16 --device cpu)
DIGITS_GEN=(--dataset folder --data-root "$DIGITS_LT" --data-csv "$HS/digits.csv" --strengths 0.1 0.2 0.3 0.4 0.5
            0.6 0.7 0.8 0.9 1.0 --seeds 10 20 --steps 20 --batch-size 40 --device cpu --jpeg-quality 95)

echo "-- digits: strengths 0.1 … 1.0 x seeds 10, 20 at the paper's text guidance 10, native 16 px, 20 steps"
gen_run "$GEN/digits.log" env HF_HOME="$DIGITS_HF" "$PY" data_generation/gene_img.py "${DIGITS_GEN[@]}" \
  --output-path "$GEN/digits" | sed 's/^/   /'
gen_run "$GEN/digits_figure.log" "$PY" data_generation/plot_spectrum.py --output_path "$GEN/digits" --rows 10 \
  | sed 's/^/   /'
echo "-- digits again without classifier-free guidance (text guidance 1, seed 10), for the CLIPScore filter of stage 30"
gen_run "$GEN/digits_no_cfg.log" env HF_HOME="$DIGITS_HF" "$PY" data_generation/gene_img.py "${DIGITS_GEN[@]}" \
  --seeds 10 --guidance-scale 1 --output-path "$GEN/digits_no_cfg" | sed 's/^/   /'

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
