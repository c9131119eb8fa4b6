"""Generate the synthetic-to-real spectrum of the hard images of any registered dataset (DisCL Phase 1, step 2).

    python data_generation/gene_img.py --dataset folder --data-root my_data --data-csv hard.csv \
        --output-path data/my_syn [--backend sd --model stable-diffusion-v1-5/stable-diffusion-v1-5]

--dataset names a registered dataset (iwildcam, imagenet_lt, folder, or a module that registers one); its
defaults (input size, prompt, quality retry, classes never regenerated) apply unless a flag says otherwise.
Same outputs, sharding and resume as the per-dataset scripts. See docs/generation.md.
"""

from __future__ import annotations

from discl.cli import run_cli
from discl.generation import runner


def main(argv=None) -> int:
    """Generate one part of the spectrum (see discl.generation.runner.main)."""
    return runner.main(argv, None, __doc__)


if __name__ == "__main__":
    run_cli(main)
