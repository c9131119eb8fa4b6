"""Collect an experiment's runs into its table and figures (docs/experiments.md).

    python curriculum/aggregate.py experiments/iwildcam.toml
    → RUNS_DIR/results/table.md, table.csv, table.tex, runs.csv, curves.{pdf,png}, timeline_*.{pdf,png}, wiseft_*.…

Cells are mean ± std over the seeds that finished (the selected epoch's metric on each column's split), the
paper's numbers beside them; † marks a method with runs missing or unfinished; paired differences to each
method's baseline come with a t confidence interval over the seeds both finished.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from discl.cli import run_cli, setup_logging
from discl.experiments.aggregate import build_rows, to_markdown, write_tables
from discl.experiments.figures import write_figures
from discl.experiments.spec import load_experiment, parse_assignments


def get_args_parser() -> argparse.ArgumentParser:
    """The aggregator's flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="experiment file (TOML)")
    parser.add_argument("--runs-dir", help="where the runs live (default: the file's runs_dir)")
    parser.add_argument("--set", dest="variables", action="append", default=[], metavar="NAME=VALUE",
                        help="a ${NAME} of the file (overrides its [variables] and the environment)")
    parser.add_argument("--out", type=Path, help="output folder (default: RUNS_DIR/results)")
    parser.add_argument("--include-incomplete", action="store_true",
                        help="count unfinished runs with their best epoch so far (still marked †)")
    parser.add_argument("--no-figures", dest="figures", action="store_false", help="tables only")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Write the tables (and figures), print the Markdown table."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    experiment = load_experiment(args.experiment, args.runs_dir, parse_assignments(args.variables))
    out = args.out or experiment.runs_dir / "results"
    rows = build_rows(experiment, include_incomplete=args.include_incomplete)
    paths = write_tables(experiment, rows, out)
    figures = write_figures(experiment, rows, out) if args.figures else []
    print(to_markdown(experiment, rows))
    print(f"tables: {', '.join(str(p) for p in paths.values())}")
    if figures:
        print(f"figures (PDF + PNG): {', '.join(str(p.with_suffix('')) for p in figures)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
