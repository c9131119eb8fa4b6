"""Draw the synthetic-to-real spectrum grid (the paper's Fig. 1) from a generation output folder.

    python data_generation/plot_spectrum.py --output_path data/iwildcam_syn --rows 4 --seed 10

Rows are source images, columns the real image then the strengths, for one seed. Reads the manifests
under <output_path>/manifests, so any run of gene_img.py (either dataset) works.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from discl.cli import run_cli, setup_logging
from discl.fileio import atomic_write_bytes
from discl.plots.spectrum import plot_spectrum, read_output_manifests


def get_args_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_path", required=True, help="gene_img.py output folder (holds manifests/)")
    parser.add_argument("--real_path", default=None,
                        help="real images (only for a folder in the reference's layout, without manifests)")
    parser.add_argument("--dataset", choices=("iwildcam", "imagenet_lt"), default=None,
                        help="dataset of a folder in the reference's layout (names its classes)")
    parser.add_argument("--figure", default=None, help="PNG to write (default: <output_path>/spectrum.png)")
    parser.add_argument("--seed", type=int, default=None, help="which seed's images (default: the smallest)")
    parser.add_argument("--rows", type=int, default=4, help="source images shown")
    parser.add_argument("--classes", nargs="+", default=None, help="only these classes (name or folder)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv=None) -> int:
    """Write the figure and print where it is."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    output = Path(args.output_path)
    figure = Path(args.figure) if args.figure else output / "spectrum.png"
    atomic_write_bytes(figure, plot_spectrum(read_output_manifests(output, args.real_path, args.dataset), output, args.seed, args.rows,
                                             args.classes))
    print(f"spectrum figure: {figure}")
    return 0


if __name__ == "__main__":
    run_cli(main)
