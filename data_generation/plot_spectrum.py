"""Draw the synthetic-to-real spectrum grid (the paper's Fig. 1) from a generation output folder, as PDF and PNG.

    python data_generation/plot_spectrum.py --syn-path data/iwildcam_syn --rows 4 --seed 10

One row per class (its first source image), columns from the lowest image guidance to the real photo, tiles at
the generated resolution, for one seed. Reads the manifests
under <syn-path>/manifests, so any run of gene_img.py (any dataset) works; a folder in the reference's
layout (no manifests) needs --image-root (--real_path) and --dataset.
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

from discl.cli import run_cli, setup_logging
from discl.config import add_arguments, from_args, option
from discl.errors import InputError
from discl.plots.spectrum import read_output_manifests, save_spectrum

# No ``from __future__ import annotations`` here: the config dataclass must resolve its types when this file
# is loaded as a script module (tests import it by path).


@dataclass
class SpectrumConfig:
    """What to draw and where."""

    output_path: str = option("", "gene_img.py output folder (holds manifests/)", flag="--syn-path",
                              aliases=("--output-path", "--output_path"), required=True)
    real_path: str | None = option(None, "folder of the real images (only for a folder in the reference's layout, "
                                         "without manifests)", flag="--image-root",
                                   aliases=("--real-path", "--real_path"))
    dataset: str | None = option(None, "registered dataset of a folder in the reference's layout (names its "
                                       "classes)")
    figure: str | None = option(None, "PNG to write, with the PDF beside it; none = <syn-path>/spectrum.png",
                                aliases=("--output",))
    seed: int | None = option(None, "which generation seed's images (one of gene_img.py's --seeds); none = the "
                                    "smallest")
    rows: int = option(4, "classes shown (one row each)")
    classes: list[str] | None = option(None, "only these classes (name or folder)")


def get_args_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, SpectrumConfig)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv=None) -> int:
    """Write the figure and print where it is."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    config = from_args(SpectrumConfig, args)
    if config.rows < 1:
        raise InputError("--rows", f"must be >= 1, got {config.rows}")
    output = Path(config.output_path)
    figure = Path(config.figure) if config.figure else output / "spectrum.png"
    manifest = read_output_manifests(output, config.real_path, config.dataset)
    written = save_spectrum(manifest, output, figure, config.seed, config.rows, config.classes or None)
    print(f"spectrum figure: {', '.join(str(path) for path in written)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
