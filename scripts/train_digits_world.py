"""Train the digits world's models on CPU and write them as the committed fp16 weights (docs/digits-world.md).

    .venv/bin/python scripts/train_digits_world.py                  # rewrites src/discl/tiny/digits/weights/
    .venv/bin/python scripts/train_digits_world.py --out /tmp/w     # elsewhere (compare: sha256sum */*.safetensors)

Same flags and torch thread count → the same bytes. The run prints each model's measurements (CLIP zero-shot
accuracy on held-out digits, VAE reconstruction error, UNet loss) and the total time; they are also written to
``training.json`` beside the weights.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

from discl.cli import run_cli, setup_logging
from discl.config import dataclass_parser, from_args, to_plain
from discl.tiny.digits.install import WEIGHTS_DIR, save_weights
from discl.tiny.digits.train import WorldConfig, train_world


def main(argv: Sequence[str] | None = None) -> int:
    """Train CLIP, VAE and UNet, save them, print the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[dataclass_parser(WorldConfig)])
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder of the weights and training.json")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    config = from_args(WorldConfig, args)
    started = time.perf_counter()
    models, report = train_world(config)
    report = {"config": to_plain(config), **report, "total_seconds": round(time.perf_counter() - started, 1)}
    written = save_weights(models, report, args.out)
    print(json.dumps(report, indent=2))
    for name, path in written.items():
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    run_cli(main)
