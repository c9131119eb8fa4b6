"""Generate the synthetic-to-real spectrum of the iWildCam hard images (DisCL Phase 1, step 2).

    python data_generation/iWildCam/gene_img.py --data_csv hard_iwildcam.csv --image-root /data/wilds \
        --output_path data/iwildcam_syn --part 1 --total_parts 4

Defaults are the paper's: SDXL refiner img2img in fp16, strengths 0.1…1.0, seeds 10…70, text guidance 10,
50 steps, input resized to 480×270, prompt "a photo of {common name} in the wild". Writes
<output>/<species>/Strength{100s}_guidance{10g}_seed{seed}/<image>.jpg and <output>/manifests/partKKK-of-NNN.csv;
a rerun (or a restart after a kill) makes only what is missing. See docs/generation.md.
"""

from __future__ import annotations

from discl.cli import run_cli
from discl.generation import runner

DATASET = "iwildcam"


def main(argv=None) -> int:
    """Generate one part of the spectrum (see discl.generation.runner.main)."""
    return runner.main(argv, DATASET, __doc__)


if __name__ == "__main__":
    run_cli(main)
