"""DisCL Phase 2 on any registered dataset with either trainer (docs/train-iwildcam.md, docs/train-imagenet-lt.md).

    python curriculum/train.py --trainer flyp --dataset iwildcam --data-root WILDS \\
        --train-table DATA/train.csv --val-table DATA/validate.csv --curriculum adaptive --output-dir runs/flyp
    python curriculum/train.py --trainer ce --dataset folder --data-root MY_IMAGES --curriculum none \\
        --output-dir runs/baseline          (no --train-table: the dataset's real training images)

``--trainer flyp``: CLIP fine-tuned with its contrastive loss, evaluated with a zero-shot head; ``--trainer ce``:
a classifier with cross-entropy or Balanced Softmax. Each trainer brings its defaults (see
``--trainer NAME --help``); ``--trainer flyp`` without ``--curriculum`` trains the FLYP baseline, not the paper's
method (DisCL's iWildCam runs use ``--curriculum adaptive``). Multi-GPU: ``torchrun --nproc_per_node N curriculum/train.py ...`` (the batch is
global).
"""

from __future__ import annotations

from typing import Sequence

from discl.cli import run_cli
from discl.training import cli


def main(argv: Sequence[str] | None = None) -> int:
    """Train, then print the per-epoch metrics and the epoch selected on the validation split."""
    return cli.main(argv, description=__doc__)


if __name__ == "__main__":
    run_cli(main)
