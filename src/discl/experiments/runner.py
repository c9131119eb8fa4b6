"""Launching an experiment's runs: the real command lines of the training scripts, locally (one or N at once)
or as SLURM arrays, each run skipped when complete and resumed when interrupted.

A run's state is read from its folder, never from a registry of launched jobs: ``complete`` (``summary.json``
says every epoch finished, and WiSE-FT wrote ``wiseft/wiseft.json`` when the method asks for it), ``trained``
(only WiSE-FT is left), ``incomplete`` (``checkpoints/last.pt`` exists: the trainer continues with
``--resume``), ``missing``. So the same command, run again after a crash, a preemption or a new seed in the
file, does exactly the work that is left. Each run's folder gets ``experiment.json`` (the experiment, method,
seed and the commands that made it) and ``experiment.log`` (their output); the scripts add their own
``run_records/``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from discl.errors import InputError, decoding
from discl.experiments.spec import (DEFAULT_SCRIPT, WISEFT_SCRIPT, Experiment, FlagValue, Run, python, substitute,
                                    waves)
from discl.fileio import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

COMPLETE, TRAINED, INCOMPLETE, MISSING = "complete", "trained", "incomplete", "missing"
RECORD, LOG = "experiment.json", "experiment.log"
BLOCKED = 3  # exit status of a run whose ``after`` runs are not complete


def flag_args(flags: Mapping[str, FlagValue]) -> list[str]:
    """``{"epochs": 2, "plots": False, "guidance-levels": [50, 100]}`` → ``--epochs 2 --no-plots
    --guidance-levels 50 100`` (a boolean is its flag or its ``--no-`` form; an empty list the bare flag)."""
    args: list[str] = []
    for flag, value in flags.items():
        if isinstance(value, bool):
            args.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, list):
            args += [f"--{flag}", *(str(v) for v in value)]
        else:
            args += [f"--{flag}", str(value)]
    return args


def _resolved(experiment: Experiment, run: Run, flags: Mapping[str, FlagValue]) -> list[str]:
    values = experiment.builtins(run)
    where = f"method {run.method.id}"

    def one(value):
        if isinstance(value, str):
            return substitute(value, values, where, experiment.path)
        if isinstance(value, list):
            return [one(v) for v in value]
        return value

    return flag_args({flag: one(value) for flag, value in flags.items()})


def train_command(experiment: Experiment, run: Run, resume: bool = False) -> list[str]:
    """The command line that trains ``run`` (``--resume`` continues it from its last checkpoint)."""
    method = run.method
    command = [*(experiment.launcher or [python()]), method.script]
    if method.script == DEFAULT_SCRIPT:  # the per-dataset scripts fix their trainer
        command += ["--trainer", method.trainer]
    command += ["--dataset", method.dataset, *_resolved(experiment, run, method.flags), "--seed", str(run.seed),
                "--output-dir", str(run.output_dir)]
    return command + (["--resume"] if resume else [])


def wiseft_command(experiment: Experiment, run: Run) -> list[str]:
    """The command line of WiSE-FT on ``run``'s selected checkpoint."""
    return [python(), WISEFT_SCRIPT, "--run-dir", str(run.output_dir),
            *_resolved(experiment, run, run.method.wiseft_flags)]


def json_object(path: Path) -> dict:
    """The JSON object in ``path`` (``{}`` when there is no file); ``InputError`` naming the file when it is not
    UTF-8 JSON holding one object."""
    if not path.is_file():
        return {}
    try:
        with decoding(path):
            data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(path, f"expected a JSON object, got {type(data).__name__}")
    return data


def _lenient(path: Path) -> dict:
    """``json_object``, but a file that is not one reads as none (run states: its run is redone)."""
    try:
        return json_object(path)
    except InputError:  # written atomically, so only a foreign or damaged file
        return {}


def _summary(folder: Path) -> dict:
    return _lenient(folder / "summary.json")


def trained(folder: Path) -> bool:
    """``summary.json`` says every epoch of the run finished."""
    summary = _summary(folder)
    return bool(summary) and summary.get("epochs_done", 0) >= summary.get("num_epochs", float("inf"))


def run_status(run: Run) -> str:
    """``complete``, ``trained`` (WiSE-FT left), ``incomplete`` (a checkpoint to resume) or ``missing``."""
    folder = run.output_dir
    if trained(folder):
        if run.method.wiseft and not (folder / "wiseft" / "wiseft.json").is_file():
            return TRAINED
        return COMPLETE
    if (folder / "checkpoints" / "last.pt").is_file():
        return INCOMPLETE
    return MISSING


def progress(run: Run) -> str:
    """``epoch k of n`` from the run's summary (empty when it has none)."""
    summary = _summary(run.output_dir)
    return f"epoch {summary['epochs_done']} of {summary['num_epochs']}" if summary else ""


def planned_commands(experiment: Experiment, run: Run, status: str | None = None) -> list[list[str]]:
    """What is left to do for ``run``: train (fresh or resumed) and/or WiSE-FT; nothing when complete."""
    status = status or run_status(run)
    commands = []
    if status in (MISSING, INCOMPLETE):
        commands.append(train_command(experiment, run, resume=status == INCOMPLETE))
    if run.method.wiseft and status != COMPLETE:
        commands.append(wiseft_command(experiment, run))
    return commands


def stale_record(experiment: Experiment, run: Run) -> bool:
    """The run was launched with other training flags than the experiment file gives now."""
    record = run.output_dir / RECORD
    if not record.is_file():
        return False
    saved = _lenient(record).get("train", [])
    now = train_command(experiment, run)
    # the launcher and the interpreter may differ between machines; the flags may not
    return _flags_of(saved) != _flags_of(now)


def _flags_of(command: Sequence[str]) -> list[str]:
    tail = [c for c in command if c != "--resume"]
    first = next((i for i, c in enumerate(tail) if c.startswith("--")), len(tail))
    return tail[first:]


def blocked_by(experiment: Experiment, run: Run) -> list[str]:
    """The runs of ``run``'s ``after`` methods (same seed) that are not complete."""
    waiting = []
    for method_id in run.method.after:
        other = next(r for r in experiment.runs() if r.method.id == method_id and r.seed == run.seed)
        if run_status(other) != COMPLETE:
            waiting.append(other.id)
    return waiting


@dataclass
class Outcome:
    """What happened to one run."""

    run: Run
    result: str  # skipped, done, failed, blocked
    detail: str = ""
    seconds: float = 0.0


def execute(experiment: Experiment, run: Run, env: Mapping[str, str] | None = None) -> Outcome:
    """Do what is left of ``run`` in this process's child processes, logging to its ``experiment.log``."""
    status = run_status(run)
    if status == COMPLETE:
        return Outcome(run, "skipped", "complete")
    waiting = blocked_by(experiment, run)
    if waiting:
        return Outcome(run, "blocked", f"waiting for {', '.join(waiting)}")
    commands = planned_commands(experiment, run, status)
    folder = run.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / RECORD, {"experiment": str(experiment.path), "method": run.method.name,
                                        "seed": run.seed, "train": train_command(experiment, run),
                                        "wiseft": wiseft_command(experiment, run) if run.method.wiseft else None})
    start = time.monotonic()
    with open(folder / LOG, "a", encoding="utf-8") as handle:
        for command in commands:
            log.info("%s: %s", run.id, shlex.join(command))
            handle.write(f"$ {shlex.join(command)}\n")
            handle.flush()
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=dict(env or os.environ),
                                  check=False).returncode
            if code != 0:
                return Outcome(run, "failed", f"exit status {code}; see {folder / LOG}", time.monotonic() - start)
    return Outcome(run, "done", "resumed" if status == INCOMPLETE else status, time.monotonic() - start)


def run_local(experiment: Experiment, runs: Sequence[Run], jobs: int = 1,
              devices: Sequence[str] | None = None) -> list[Outcome]:
    """Do what is left of ``runs``, ``jobs`` at a time, wave by wave (a run after the runs it needs).

    With ``devices``, there is one concurrent slot per entry, which its runs see as ``CUDA_VISIBLE_DEVICES``
    (an entry may name several GPUs, ``"0,1"``, for a launcher such as torchrun).
    """
    slots = list(devices) if devices else [None] * max(1, jobs)
    free: queue.Queue = queue.Queue()
    for slot in slots:
        free.put(slot)

    def one(run: Run) -> Outcome:
        device = free.get()
        try:
            env = dict(os.environ)
            if device is not None:
                env["CUDA_VISIBLE_DEVICES"] = device
            outcome = execute(experiment, run, env)
            log.info("%s: %s%s", run.id, outcome.result, f" ({outcome.detail})" if outcome.detail else "")
            return outcome
        finally:
            free.put(device)

    outcomes: list[Outcome] = []
    for wave in waves(experiment, runs):
        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            outcomes += list(pool.map(one, wave))
    return outcomes


def status_table(experiment: Experiment, runs: Sequence[Run]) -> str:
    """One line per run: its id, state, progress and a note when its flags changed since it was launched."""
    lines = [f"{'run':<32} {'state':<10} progress"]
    for run in runs:
        status = run_status(run)
        note = "  (launched with other flags)" if stale_record(experiment, run) else ""
        lines.append(f"{run.id:<32} {status:<10} {progress(run)}{note}")
    counts = {s: sum(run_status(r) == s for r in runs) for s in (COMPLETE, TRAINED, INCOMPLETE, MISSING)}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- SLURM ----
def slurm_scripts(experiment: Experiment, runs: Sequence[Run], entry: Sequence[str],
                  options: Sequence[str] = ()) -> list[str]:
    """One sbatch script per wave: an array over the wave's run indices, each task ``entry --run-index I``.

    ``entry`` is the command that re-reads the experiment (interpreter, entry script, file and its flags);
    ``options`` are extra ``#SBATCH`` lines after the experiment's own ``[launch].slurm``.
    """
    scripts = []
    logs = experiment.runs_dir / "slurm"
    for number, wave in enumerate(waves(experiment, runs)):
        indices = ",".join(str(run.index) for run in wave)
        lines = ["#!/bin/bash", f"#SBATCH --job-name=discl-{experiment.name}-{number}", f"#SBATCH --array={indices}",
                 f"#SBATCH --output={logs}/%x-%a.out"]
        lines += [f"#SBATCH {option}" for option in (*experiment.slurm, *options)]
        lines += ["# runs: " + " ".join(f"{run.index}={run.id}" for run in wave),
                  f"# the --output folder must exist before sbatch: mkdir -p {shlex.quote(str(logs))}",
                  "set -euo pipefail",
                  f"cd {shlex.quote(str(Path.cwd()))}",
                  f"exec {shlex.join(entry)} --run-index \"$SLURM_ARRAY_TASK_ID\"", ""]
        scripts.append("\n".join(lines))
    return scripts


def submit_slurm(experiment: Experiment, scripts: Sequence[str], sbatch: Sequence[str] = ("sbatch",)) -> list[str]:
    """Write the scripts under ``<runs>/slurm/`` and submit them, each wave after the previous one ended
    (``afterany``: a failed run blocks only its own dependents, which then exit saying so)."""
    folder = experiment.runs_dir / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    job_ids: list[str] = []
    for number, script in enumerate(scripts):
        path = folder / f"wave{number}.sbatch"
        atomic_write_text(path, script)
        command = [*sbatch, "--parsable"]
        if job_ids:
            command.append(f"--dependency=afterany:{job_ids[-1]}")
        try:
            result = subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise InputError(sbatch[0], "not found: submit from a SLURM login node, or print the scripts with "
                                        "--slurm print") from None
        if result.returncode != 0:
            raise InputError(path, f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}")
        job_ids.append(result.stdout.strip().split(";")[0])
        log.info("submitted %s as job %s", path, job_ids[-1])
    return job_ids


# ---------------------------------------------------------------------------------------------- validation ----
def _raising_parser(parser, where: str, path: Path):
    """``parser`` whose errors raise ``InputError`` (argparse would print the usage and exit)."""
    def error(message: str):
        raise InputError(path, f"{where}: {message}")

    parser.error = error
    return parser


def _script_parser(script: str, trainer: str, path: Path):
    """The training script's own parser (its ``get_args_parser()``), or the generic trainer's."""
    import importlib.util

    from discl.training import cli

    if script == DEFAULT_SCRIPT:
        return cli.get_args_parser(trainer, trainer_flag=True)
    file = Path(script)
    if not file.is_file():
        raise InputError(path, f"training script {script} not found (run from the repository root, or give its "
                               "path)")
    spec = importlib.util.spec_from_file_location(f"discl_experiment_script_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_args_parser"):
        return None
    return module.get_args_parser()


@contextmanager
def _naming(where: str, path: Path) -> Iterator[None]:
    """A check's ``InputError`` inside, as an error of the experiment file naming ``where`` (the method)."""
    try:
        yield
    except InputError as err:
        raise InputError(path, f"{where}: {err}") from None


def _check_training(args, trainer: str) -> None:
    """The checks a training script runs on its flags before loading anything (``LoopConfig.check`` and the
    task's ``check``); nothing for a script whose flags are not the training loop's."""
    from discl.config import from_args
    from discl.training.cli import task_class
    from discl.training.config import LoopConfig

    if not all(hasattr(args, f.name) for f in dataclasses.fields(LoopConfig)):
        return
    if getattr(args, "dataset", None):  # what the script does first: option keys and values (nothing is read)
        from discl.datasets import from_args as dataset_from_args

        dataset_from_args(args)
    task = task_class(getattr(args, "trainer", None) or trainer)
    loop = from_args(LoopConfig, args)
    loop.check()
    task(from_args(task.options_class, args)).check(loop)


def check_commands(experiment: Experiment) -> None:
    """Parse every method's command line with its script's parser, then run the checks the script runs on the
    parsed flags, before anything runs: a misspelt flag or a bad value is an ``InputError`` naming the file and
    the method, not a failed job hours later."""
    import argparse

    from discl.config import add_arguments, from_args
    from discl.wiseft import WiseFTConfig

    path = experiment.path
    parsers: dict[tuple[str, str], object] = {}
    for method in experiment.methods:
        run = next(r for r in experiment.runs() if r.method is method)
        where = f"method {method.id}"
        key = (method.script, method.trainer)
        if key not in parsers:
            parsers[key] = _script_parser(method.script, method.trainer, path)
        parser = parsers[key]
        if parser is not None:
            command = train_command(experiment, run)
            args = _raising_parser(parser, where, path).parse_args(command[command.index(method.script) + 1:])
            with _naming(where, path):
                _check_training(args, method.trainer)
        if method.wiseft:
            wiseft = argparse.ArgumentParser(add_help=False)
            add_arguments(wiseft, WiseFTConfig)
            where = f"{where} (wiseft_flags)"
            args = _raising_parser(wiseft, where, path).parse_args(wiseft_command(experiment, run)[2:])
            with _naming(where, path):
                from_args(WiseFTConfig, args).check()
