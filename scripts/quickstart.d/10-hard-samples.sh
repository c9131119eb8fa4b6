# Stage 10 — hard samples and LLM-style prompts (usage: docs/hard-samples-and-prompts.md).
# Sourced by scripts/quickstart.sh with PY, RUN, WORLD and the DIGITS_* variables set. On the digits the classifier
# is the trained CLIP (open_clip format), so its probabilities mean something; on the mini worlds it is the tiny
# open_clip with random weights ("hard for a random model": the point there is the flow and the file formats).
# Outputs: $RUN/hard_samples/{digits,iwildcam,imagenet_lt}.csv (+ *_scores.csv) and imagenet_lt_prompts.json.
HS="$RUN/hard_samples"
mkdir -p "$HS"
# Library logs go to a file; on failure they are shown.
hs_run() { local log="$1"; shift; if ! "$@" 2>"$log"; then cat "$log" >&2; return 1; fi; }
HS_TINY=(--model discl-tiny-clip --pretrained "" --device cpu --workers 0 --summary-rows 8)

echo "-- digits: the trained CLIP's zero-shot head; hard = p(true) < 0.99 or a few-shot class, at most 2 per class"
hs_run "$HS/digits.log" env HF_HOME="$DIGITS_HF" "$PY" data_generation/make_hard_samples.py --dataset folder \
  --data-root "$DIGITS_LT" "${DIGITS_CLIP[@]}" --device cpu --workers 0 --criterion low-prob --max-prob 0.99 \
  --tail-classes --per-class-cap 2 --summary-rows 0 --output "$HS/digits.csv" | sed 's/^/   /'

echo "-- iWildCam: misclassified or p(true) < 0.3, at most 3 per species, never 'empty'"
hs_run "$HS/iwildcam.log" "$PY" data_generation/make_hard_samples.py --dataset iwildcam \
  --data-root "$WORLD/iwildcam" "${HS_TINY[@]}" --criterion either --max-prob 0.3 --per-class-cap 3 \
  --output "$HS/iwildcam.csv"

echo "-- ImageNet-LT: every image of the few-shot classes (the reference's rule), at most 4 per class"
hs_run "$HS/imagenet_lt.log" "$PY" data_generation/make_hard_samples.py --dataset imagenet_lt \
  --data-root "$WORLD/imagenet_lt" "${HS_TINY[@]}" --criterion none --tail-classes \
  --per-class-cap 4 --output "$HS/imagenet_lt.csv"

echo "-- prompts for the ImageNet-LT hard classes (offline template bank; the LLM backend needs OPENAI_API_KEY)"
hs_run "$HS/prompts.log" "$PY" data_generation/ImageNet_LT/get_text_prompt.py --data_csv "$HS/imagenet_lt.csv" \
  --prompt_json "$HS/imagenet_lt_prompts.json" --backend template
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); c = sorted(d)[0]; print(f"   e.g. {c}: {d[c][0]}")' \
  "$HS/imagenet_lt_prompts.json"
