# Stage 05 — the dataset readers on the mini world (usage: docs/datasets.md).
# Sourced by scripts/quickstart.sh with PY, RUN and WORLD set; prints what a researcher would check first.
mkdir -p "$RUN/datasets"
"$PY" - "$WORLD" "$RUN/datasets" <<'PYEOF'
import sys
from pathlib import Path

import torch

from discl.data import imagenet_lt, iwildcam
from discl.data.hard_sample_csv import read_hard_sample_csv
from discl.errors import InputError
from discl.fileio import atomic_write_text

world, out = Path(sys.argv[1]), Path(sys.argv[2])
wilds_root = world / "iwildcam"
species, common = iwildcam.species_names(wilds_root), iwildcam.zeroshot_classnames(wilds_root)
print("iWildCam classes: " + ", ".join(f"{y} {s} ({c})" for y, (s, c) in enumerate(zip(species, common))))
dataset = iwildcam.load_dataset(wilds_root)
test = dataset.get_subset("test")
results, _ = dataset.eval(torch.zeros_like(test.y_array), test.y_array, test.metadata_array)
print(f"iWildCam OOD test, always-'empty' baseline via WILDS eval: macro-F1 {results['F1-macro_all']:.3f}, "
      f"acc {results['acc_avg']:.3f}")

counts = imagenet_lt.class_counts(imagenet_lt.read_split(world / "imagenet_lt", "train"))
print(f"ImageNet-LT training counts per class: {counts}")
for convention in imagenet_lt.CONVENTIONS:
    print(f"  {convention:9s} cut: {imagenet_lt.split_by_count(counts, convention=convention)}")

# The reference's own iWildCam template names the class by its common name; we stop with a clear message.
template = out / "reference_template.csv"
atomic_write_text(template, ",label id,label name,filepath,img_name\n"
                  "0,58,Cheetah,data_generation/iWildCam/sample_imgs/8b5d271c.jpg,8b5d271c\n")
try:
    read_hard_sample_csv(template, "iwildcam")
except InputError as err:
    print(f"reference template rejected as expected: {err}")
PYEOF
