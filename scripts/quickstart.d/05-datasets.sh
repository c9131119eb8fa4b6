# Stage 05 — the dataset registry on the long-tailed digits and the mini world (usage: docs/datasets.md).
# Sourced by scripts/quickstart.sh with PY, RUN and WORLD set; prints what a researcher would check first.
mkdir -p "$RUN/datasets"
"$PY" - "$WORLD" "$RUN/datasets" <<'PYEOF'
import sys
from pathlib import Path

import numpy as np

from discl.data.hard_sample_csv import read_hard_sample_csv
from discl.datasets import get_dataset, names
from discl.errors import InputError
from discl.fileio import atomic_write_text

world, out = Path(sys.argv[1]), Path(sys.argv[2])
print(f"registered datasets: {', '.join(names())}")
digits = get_dataset("folder", world / "digits" / "lt")
print("long-tailed digits (an ImageFolder root, --dataset folder): " + ", ".join(
    f"{name} {count} ({group})" for name, count, group in zip(digits.class_names(), digits.class_counts(),
                                                              digits.class_groups()))
      + f"; val {len(digits.eval_set('val').paths)}, test {len(digits.eval_set('test').paths)} held-out digits")
wilds = get_dataset("iwildcam", world / "iwildcam")
print("iWildCam classes: " + ", ".join(f"{y} {s} ({c})"
                                       for y, (s, c) in enumerate(zip(wilds.class_names(), wilds.text_names()))))
test = wilds.eval_set("test")
metrics = wilds.evaluate(test, np.zeros_like(test.labels))
print(f"iWildCam {wilds.split_titles['test']}, always-'empty' baseline via WILDS eval: macro-F1 {metrics['f1']:.3f}, "
      f"acc {metrics['acc']:.3f}")

for convention in ("reference", "standard"):
    lt = get_dataset("imagenet_lt", world / "imagenet_lt", split_convention=convention)
    if convention == "reference":
        print(f"ImageNet-LT training counts per class: {lt.class_counts()}")
    print(f"  {convention:9s} cut: {list(lt.class_groups())}")

# The reference's own iWildCam template names the class by its common name; we stop with a clear message.
template = out / "reference_template.csv"
atomic_write_text(template, ",label id,label name,filepath,img_name\n"
                  "0,58,Cheetah,data_generation/iWildCam/sample_imgs/8b5d271c.jpg,8b5d271c\n")
try:
    read_hard_sample_csv(template, wilds)
except InputError as err:
    print(f"reference template rejected as expected: {err}")
PYEOF
