"""Build the tiny world: ``python -m discl.tiny --out DIR``.

DIR/hf_home     an HF_HOME with tiny models under the real hub ids (export HF_HOME=DIR/hf_home to use it)
DIR/iwildcam    a WILDS root dir holding a mini iwildcam_v2.0
DIR/imagenet_lt a mini ImageNet-LT root with its txt lists
DIR/folder      a mini ImageFolder root (train/ val/ test/<class>/) for the folder dataset kind
DIR/digits      the digits world (docs/digits-world.md): DIR/digits/hf_home holds small models trained on real
                handwritten digits under the same real ids, DIR/digits/lt a long-tailed digits ImageFolder root
Everything already complete is kept as it is.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from discl.cli import run_cli, setup_logging


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m discl.tiny``."""
    parser = argparse.ArgumentParser(prog="python -m discl.tiny", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder of the tiny world")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mini datasets' pixels")
    parser.add_argument("--digits-only", action="store_true", help="build only DIR/digits (the digits world)")
    parser.add_argument("--verbose", action="store_true")
    return parser


def describe_iwildcam(root: Path) -> str:
    """One line: images per split and classes of a mini WILDS iWildCam root."""
    import pandas as pd

    metadata = pd.read_csv(root / "iwildcam_v2.0" / "metadata.csv")
    per_split = Counter(metadata["split"])
    splits = ", ".join(f"{split} {per_split[split]}" for split in ("train", "id_val", "id_test", "val", "test"))
    return f"{len(metadata)} images ({splits}), {metadata['y'].nunique()} classes"


def describe_imagenet_lt(root: Path) -> str:
    """One line: images per list and the many/medium/few class counts of a mini ImageNet-LT root."""
    from discl.data.imagenet_lt import class_counts, read_split, split_by_count

    sizes = {split: len(read_split(root, split)) for split in ("train", "val", "test")}
    groups = Counter(split_by_count(class_counts(read_split(root, "train"))))
    return (", ".join(f"{split} {size}" for split, size in sizes.items())
            + f"; classes: {groups['many']} many, {groups['medium']} medium, {groups['few']} few")


def describe_folder(root: Path) -> str:
    """One line: images per split and training images per class of a mini ImageFolder root."""
    from discl.datasets import get_dataset

    dataset = get_dataset("folder", root)
    sizes = {split: len(dataset.eval_set(split).paths) for split in dataset.eval_splits}
    counts = dict(zip(dataset.class_names(), dataset.class_counts()))
    return (f"train {sum(counts.values())}, " + ", ".join(f"{split} {size}" for split, size in sizes.items())
            + "; training images per class: " + ", ".join(f"{name} {count}" for name, count in counts.items()))


def main(argv: Sequence[str] | None = None) -> int:
    """Build (or complete) the tiny world and print what it holds."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    from discl.tiny import install_tiny_models, make_mini_folder, make_mini_imagenet_lt, make_mini_iwildcam
    from discl.tiny.digits import install_digits_models, make_digits_lt

    out = args.out.resolve()
    digits_installed = install_digits_models(out / "digits" / "hf_home")
    digits = make_digits_lt(out / "digits" / "lt")
    print(f"digits models in {out / 'digits' / 'hf_home'}:")
    for name, where in digits_installed.items():
        print(f"  {name:45s} {where}")
    print(f"digits      {digits}: {describe_folder(digits)}")
    if args.digits_only:
        return 0
    hf_home = out / "hf_home"
    installed = install_tiny_models(hf_home)
    iwildcam = make_mini_iwildcam(out / "iwildcam", seed=args.seed)
    imagenet_lt = make_mini_imagenet_lt(out / "imagenet_lt", seed=args.seed)
    folder = make_mini_folder(out / "folder", seed=args.seed)

    print(f"models in {hf_home}:")
    for name, where in installed.items():
        print(f"  {name:45s} {where}")
    print(f"iwildcam    {iwildcam}: {describe_iwildcam(iwildcam)}")
    print(f"imagenet_lt {imagenet_lt}: {describe_imagenet_lt(imagenet_lt)}")
    print(f"folder      {folder}: {describe_folder(folder)}")
    if Path(os.environ.get("HF_HOME", "")).resolve() != hf_home.resolve():
        print(f"note: export HF_HOME={hf_home} HF_HUB_OFFLINE=1 so from_pretrained finds the tiny models")
    return 0


if __name__ == "__main__":
    run_cli(main)
