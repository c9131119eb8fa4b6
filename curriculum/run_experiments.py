"""Run an experiment file: every (method, seed) run that is not complete, locally or as SLURM arrays
(docs/experiments.md). Run it from the repository root; run it again to continue after a crash or preemption.

    python curriculum/run_experiments.py experiments/iwildcam.toml --status        # what is done, what is left
    python curriculum/run_experiments.py experiments/iwildcam.toml --dry-run       # the commands it would run
    python curriculum/run_experiments.py experiments/iwildcam.toml --jobs 4 --devices 0 1 2 3
    python curriculum/run_experiments.py experiments/iwildcam.toml --slurm print   # sbatch scripts, one per wave
    python curriculum/run_experiments.py experiments/iwildcam.toml --slurm submit --sbatch-option=--partition=gpu

A complete run (its summary.json has every epoch, and WiSE-FT's output when asked for) is skipped; an
interrupted one continues with --resume; a run listed in another's ``after`` runs first.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

from discl.cli import run_cli, setup_logging
from discl.errors import InputError
from discl.experiments import runner
from discl.experiments.spec import load_experiment, parse_assignments


def get_args_parser() -> argparse.ArgumentParser:
    """The runner's flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="experiment file (TOML), e.g. experiments/iwildcam.toml")
    parser.add_argument("--runs-dir", help="where the runs live (default: the file's runs_dir)")
    parser.add_argument("--set", dest="variables", action="append", default=[], metavar="NAME=VALUE",
                        help="a ${NAME} of the file (overrides its [variables] and the environment)")
    parser.add_argument("--only", nargs="+", metavar="METHOD", help="only these method ids")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once on this machine (default: 1)")
    parser.add_argument("--devices", nargs="+", metavar="GPUS",
                        help="one concurrent run per entry, seen as CUDA_VISIBLE_DEVICES (e.g. 0 1 2 3, or 0,1 2,3)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="print the state of every run and exit")
    what.add_argument("--dry-run", action="store_true", help="print the commands that would run and exit")
    what.add_argument("--slurm", choices=("print", "submit"), help="print or submit one sbatch array per wave")
    what.add_argument("--run", help="run one run, METHOD/seedN")
    what.add_argument("--run-index", type=int, help="run the run at this index (what a SLURM array task does)")
    parser.add_argument("--sbatch-option", action="append", default=[], metavar="OPTION",
                        help="an extra #SBATCH line, e.g. --sbatch-option=--partition=gpu")
    parser.add_argument("--sbatch", default="sbatch", help="the sbatch command (default: sbatch)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Do what the flags ask; exit status 1 when a run failed or could not start."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.jobs < 1:
        raise InputError("--jobs", f"expected a positive number of runs at once, got {args.jobs}")
    experiment = load_experiment(args.experiment, args.runs_dir, parse_assignments(args.variables))
    if args.only and not set(args.only) <= {m.id for m in experiment.methods}:
        raise InputError("--only", f"unknown method id(s); the file has {', '.join(m.id for m in experiment.methods)}")
    chosen = [run for run in experiment.runs() if not args.only or run.method.id in args.only]
    unknown = sorted(set(args.seeds or ()) - {run.seed for run in chosen})
    if unknown:
        seeds = ", ".join(map(str, sorted({run.seed for run in chosen})))
        raise InputError("--seeds", f"no run with seed(s) {', '.join(map(str, unknown))} in {experiment.path}"
                                    f"{' for --only' if args.only else ''} (its seeds: {seeds})")
    runs = [run for run in chosen if not args.seeds or run.seed in args.seeds]
    if args.status:
        print(runner.status_table(experiment, runs))
        return 0
    runner.check_commands(experiment)
    if args.run is not None or args.run_index is not None:
        run = experiment.run(args.run) if args.run is not None else _by_index(experiment, args.run_index)
        outcome = runner.execute(experiment, run)
        print(f"{run.id}: {outcome.result} {outcome.detail}".rstrip())
        return runner.BLOCKED if outcome.result == "blocked" else int(outcome.result == "failed")
    pending = [run for run in runs if runner.run_status(run) != runner.COMPLETE]
    if args.dry_run:
        for run in pending:
            for command in runner.planned_commands(experiment, run):
                print(shlex.join(command))
        print(f"# {len(pending)} of {len(runs)} runs to do", file=sys.stderr)
        return 0
    if args.slurm:
        if not pending:
            print("every run is complete")
            return 0
        entry = [sys.executable, __file__, str(experiment.path), "--runs-dir", str(experiment.runs_dir),
                 *(f"--set={item}" for item in args.variables)]
        scripts = runner.slurm_scripts(experiment, pending, entry, args.sbatch_option)
        if args.slurm == "print":
            print("\n".join(scripts))
        else:
            jobs = runner.submit_slurm(experiment, scripts, shlex.split(args.sbatch))
            print(f"submitted {len(pending)} runs as job(s) {' '.join(jobs)}")
        return 0
    outcomes = runner.run_local(experiment, runs, jobs=args.jobs, devices=args.devices)
    for outcome in outcomes:
        print(f"{outcome.run.id:<32} {outcome.result:<8} {outcome.detail}"
              + (f" ({outcome.seconds:.0f} s)" if outcome.seconds else ""))
    bad = [o for o in outcomes if o.result in ("failed", "blocked")]
    before = sum(o.result == "skipped" for o in outcomes)
    print(f"{len(outcomes) - len(bad)} of {len(outcomes)} runs complete ({before} already were)"
          + (f"; {len(bad)} failed or blocked" if bad else ""))
    return 1 if bad else 0


def _by_index(experiment, index: int):
    runs = experiment.runs()
    if not 0 <= index < len(runs):
        raise InputError("--run-index", f"{index} is not a run index (0..{len(runs) - 1})")
    return runs[index]


if __name__ == "__main__":
    run_cli(main)
