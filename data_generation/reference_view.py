"""Make a folder holding only the class folders of a gene_img.py output (as links), to run the reference's
ImageNet-LT scripts on: they take every entry of their --syn_path for a class folder, and our outputs also hold
manifests/, run_records/ and the scorer's reports. See docs/generation.md.

    python data_generation/reference_view.py --syn-path runs/gen/imagenet_lt --view runs/gen/imagenet_lt_view
"""

import argparse

from discl.cli import run_cli, setup_logging
from discl.reference_view import make_reference_view


def get_args_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--syn-path", "--syn_path", required=True, help="gene_img.py output folder (required)")
    parser.add_argument("--view", required=True,
                        help="folder to create (or remake, when it holds only links) outside --syn-path (required)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv=None) -> int:
    """Make the view and print what it holds."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    links = make_reference_view(args.syn_path, args.view)
    print(f"{args.view}: {len(links)} class folder link(s) to {args.syn_path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
