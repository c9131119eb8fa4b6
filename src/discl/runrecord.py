"""Run records: every run folder keeps, for each run that wrote into it, what ran, how and when.

``<folder>/run_records/<YYYYmmdd-HHMMSS>-<script>.json``: the command line, working directory, host, the resolved
configuration, the versions of Python and the main packages, the git commit of this checkout (when it is one),
selected environment variables (SLURM job, visible GPUs, ``DISCL_DEFAULTS``), start and end times and the status
(``running`` until the run ends: a record still ``running`` after the job is gone was killed).
``<folder>/run_records/<YYYYmmdd-HHMMSS>-<script>.log``: the run's log lines, each with its date.

An entry point wraps its work in ``with RunRecord(script, argv):``; the library calls :func:`start` with the run
folder and the resolved settings once every input is checked, so bad input still leaves nothing behind (log lines
of the checks are kept in memory and written when the record starts). Under ``torchrun`` rank 0 writes the
record and every rank its own log (``….rank1.log``). Code that calls the library directly gets no record.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import logging
import os
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from discl.fileio import atomic_write_json

log = logging.getLogger(__name__)

RECORDS_DIR = "run_records"
PACKAGES = ("discl", "torch", "torchvision", "open_clip_torch", "diffusers", "transformers", "huggingface-hub",
            "accelerate", "safetensors", "wilds", "numpy", "pandas", "scikit-learn", "pillow", "tensorboard")
ENVIRONMENT = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST",
               "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES", "WORLD_SIZE", "RANK", "LOCAL_RANK", "HF_HOME",
               "HF_HUB_OFFLINE", "OMP_NUM_THREADS", "DISCL_DEFAULTS")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

_ACTIVE: list["RunRecord"] = []


def _now() -> _dt.datetime:
    return _dt.datetime.now().astimezone()


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (this package's source), or ``None``."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0
            else None}


def devices() -> list[str]:
    """Names of the visible CUDA devices (empty without torch or a GPU)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def defaults_file() -> dict[str, Any] | None:
    """The ``DISCL_DEFAULTS`` file in effect (path and values), or ``None``."""
    from discl.config import DEFAULTS_ENV, site_defaults

    path = os.environ.get(DEFAULTS_ENV)
    return {"path": path, "values": site_defaults()} if path else None


class _Buffer(logging.Handler):
    """Holds log records until the run's log file exists, then forwards to it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.target: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.target is not None:
            self.target.handle(record)
        else:
            self.records.append(record)

    def attach(self, target: logging.Handler) -> None:
        """Write what was held to ``target`` and forward everything after it."""
        self.target = target
        for record in self.records:
            target.handle(record)
        self.records = []


class RunRecord:
    """The record of one run of an entry script (a context manager; see the module doc)."""

    def __init__(self, script: str, argv: Sequence[str] | None = None):
        self.script = script
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.rank = int(os.environ.get("RANK", "0"))
        self.started = _now()
        self.json_path: Path | None = None
        self.log_path: Path | None = None
        self.data: dict[str, Any] = {}
        self._buffer = _Buffer()
        self._file: logging.FileHandler | None = None
        self._root_level = logging.NOTSET

    def __enter__(self) -> "RunRecord":
        root = logging.getLogger()
        self._root_level = root.level
        if root.getEffectiveLevel() > logging.INFO:  # the log file keeps INFO lines whatever the console shows
            root.setLevel(logging.INFO)
        root.addHandler(self._buffer)
        _ACTIVE.append(self)
        return self

    def start(self, folder: str | os.PathLike, config: dict[str, Any]) -> None:
        """Create the record and the log file in ``folder/run_records/`` (once; later calls are ignored)."""
        if self.log_path is not None:
            return
        records = Path(folder) / RECORDS_DIR
        records.mkdir(parents=True, exist_ok=True)
        stem = f"{self.started:%Y%m%d-%H%M%S}-{self.script}"
        candidate, number = stem, 1
        while (records / f"{candidate}.json").exists() or (records / f"{candidate}.log").exists():
            number += 1
            candidate = f"{stem}-{number}"
        rank_part = f".rank{self.rank}" if self.rank else ""
        self.log_path = records / f"{candidate}{rank_part}.log"
        self._file = logging.FileHandler(self.log_path, encoding="utf-8")
        self._file.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
        from discl.cli import QuietThirdParty

        self._file.addFilter(QuietThirdParty())
        self._buffer.attach(self._file)
        if self.rank != 0:
            return
        self.json_path = records / f"{candidate}.json"
        self.data = {
            "script": self.script,
            "command": shlex.join([sys.argv[0] if sys.argv and sys.argv[0] else self.script, *self.argv]),
            "argv": self.argv,
            "cwd": os.getcwd(),
            "host": socket.gethostname(),
            "start": self.started.isoformat(timespec="seconds"),
            "end": None,
            "seconds": None,
            "status": "running",
            "config": config,
            "defaults_file": defaults_file(),
            "python": platform.python_version(),
            "packages": package_versions(),
            "git": git_state(),
            "devices": devices(),
            "environment": {k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
            "log": self.log_path.name,
        }
        atomic_write_json(self.json_path, self.data)
        log.info("run record: %s", self.json_path)

    def __exit__(self, kind, error, traceback) -> None:
        _ACTIVE.remove(self)
        root = logging.getLogger()
        root.removeHandler(self._buffer)
        root.setLevel(self._root_level)
        if self.json_path is not None:
            end = _now()
            if kind is None or (issubclass(kind, SystemExit) and not error.code):
                status = "finished"
            elif issubclass(kind, KeyboardInterrupt):
                status = "interrupted"
            else:
                status = f"failed: {kind.__name__}: {error}".replace("\n", " ")
            self.data.update(end=end.isoformat(timespec="seconds"),
                             seconds=round((end - self.started).total_seconds(), 1), status=status)
            with contextlib.suppress(OSError):
                atomic_write_json(self.json_path, self.data)
        if self._file is not None:
            self._file.close()


def start(folder: str | os.PathLike, config: dict[str, Any]) -> None:
    """Start the active run record (if an entry point opened one) in ``folder`` with the resolved ``config``."""
    if _ACTIVE:
        _ACTIVE[-1].start(folder, config)


def read_records(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every run record of ``folder``, oldest first."""
    records = Path(folder) / RECORDS_DIR
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(records.glob("*.json"))]
