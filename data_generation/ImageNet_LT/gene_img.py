"""Generate the synthetic-to-real spectrum of the ImageNet-LT hard images (DisCL Phase 1, step 2).

    python data_generation/ImageNet_LT/gene_img.py --data_csv hard_imagenet_lt.csv --image-root /data/imagenet \
        --prompt_json prompts.json --output_path data/imagenet_lt_syn --part 1 --total_parts 4

Defaults are the paper's: SDXL refiner img2img in fp16, strengths 0.1…1.0, seeds 10…70, text guidance 10,
50 steps, native image sizes (batched by equal size; --resize WxH to change), prompt "a 8k real photo: {p}" with
p drawn from the class's LLM prompts, and the CLIP quality retry (similarity <= 0.3: up to 5 more prompts, the
best kept). Same outputs and resume behaviour as the iWildCam script. See docs/generation.md.
"""

from __future__ import annotations

from discl.cli import run_cli
from discl.generation import runner

DATASET = "imagenet_lt"


def main(argv=None) -> int:
    """Generate one part of the spectrum (see discl.generation.runner.main)."""
    return runner.main(argv, DATASET, __doc__)


if __name__ == "__main__":
    run_cli(main)
