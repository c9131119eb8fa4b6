"""FLYP fine-tuning on iWildCam with a synthetic-to-real guidance curriculum (DisCL Phase 2, spec §5).

Single process:   python curriculum/iWildCam/train.py --train-table T.tsv --wilds-root ROOT --output-dir OUT
Multi-GPU (DDP):  torchrun --nproc_per_node N curriculum/iWildCam/train.py ...   (--batch-size is global)
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Sequence

from discl.cli import run_cli, setup_logging
from discl.curriculum import ADAPTIVE_CHOICES, SCHEDULES
from discl.flyp import FlypConfig, train
from discl.metrics import IWILDCAM_EVAL_SPLITS, f1_table


def get_args_parser() -> argparse.ArgumentParser:
    """The trainer's flags; defaults are the paper's (ViT-B/16 OpenAI, lr 1e-5, wd 0.2, batch 256, 20 epochs)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--train-table", required=True, help="training TSV (spec §4: title, filepath, label, ...)")
    data.add_argument("--val-table", help="curriculum-validation TSV (needed by --curriculum adaptive)")
    data.add_argument("--wilds-root", required=True, help="WILDS root dir holding iwildcam_v2.0/")
    data.add_argument("--output-dir", required=True, help="stats.tsv, curriculum.tsv, checkpoints/, figures")
    model = parser.add_argument_group("model and optimisation")
    model.add_argument("--model", default="ViT-B-16", help="open_clip model name")
    model.add_argument("--pretrained", default="openai", help="open_clip pretrained tag ('' = random init)")
    model.add_argument("--epochs", type=int, default=20)
    model.add_argument("--batch-size", type=int, default=256, help="global batch over all processes")
    model.add_argument("--lr", type=float, default=1e-5)
    model.add_argument("--wd", type=float, default=0.2)
    model.add_argument("--warmup", type=int, default=500, help="linear warm-up steps before the cosine decay")
    model.add_argument("--min-lr", type=float, default=0.0)
    curriculum = parser.add_argument_group("curriculum")
    curriculum.add_argument("--curriculum", choices=SCHEDULES, default="none")
    curriculum.add_argument("--curriculum-epoch", type=int, default=15, help="real data only from this epoch on")
    curriculum.add_argument("--adaptive-choice", choices=ADAPTIVE_CHOICES, default="argmax",
                            help="adaptive: largest mean progress (paper) or a uniformly random level (ablation)")
    curriculum.add_argument("--real-sample-size", type=int, default=30000,
                            help="adaptive: real rows in each probe round's training pass")
    curriculum.add_argument("--guidance-levels", type=int, nargs="+",
                            help="levels the schedule uses (default: every level in the training table)")
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--workers", type=int, default=4, help="DataLoader worker processes per rank")
    run.add_argument("--eval-batch-size", type=int, default=256)
    run.add_argument("--eval-splits", nargs="+", default=list(IWILDCAM_EVAL_SPLITS))
    run.add_argument("--device", help="cuda / cpu (default: cuda when available)")
    run.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/last.pt")
    run.add_argument("--stop-after-epoch", type=int, help="end the run after this epoch (resume later)")
    run.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard when it is installed")
    run.add_argument("--wandb-project", help="also log to this Weights & Biases project when wandb is installed")
    run.add_argument("--no-jpeg-draft", dest="jpeg_draft", action="store_false",
                     help="decode training JPEGs at full size (default: PIL draft mode, ≥ the model input)")
    run.add_argument("--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Train, then print the adaptive choices, the per-epoch macro-F1 table and the selected epoch."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    logging.getLogger("PIL").setLevel(logging.WARNING)
    fields = {name for name in FlypConfig.__dataclass_fields__}
    summary = train(FlypConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    if "epochs" not in summary:  # not rank 0
        return 0
    if args.curriculum == "adaptive":
        print("adaptive choices (mean progress of p(true class) per guidance level → chosen level):")
        for stage in summary["stages"]:
            if stage["kind"] == "level" and stage["start_epoch"] < args.curriculum_epoch:
                print(f"  epoch {stage['start_epoch']:6.2f}: guidance {stage['level']:>3}   "
                      f"{(stage['scores'] or 'random choice').replace(';', '  ')}")
    best = summary["best"]
    print(f"macro-F1 per epoch (%), * = selected by {IWILDCAM_EVAL_SPLITS['id_val']}:")
    print(f1_table(summary["epochs"], [s for s in args.eval_splits if s in IWILDCAM_EVAL_SPLITS] or args.eval_splits,
                   best_epoch=None if best is None else best["epoch"]))
    if best is not None:
        print("selected:", json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in best.items()}))
    return 0


if __name__ == "__main__":
    run_cli(main)
