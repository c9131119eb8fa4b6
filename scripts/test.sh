#!/usr/bin/env bash
# README command 2: set up .venv if needed, then run the whole test suite offline on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# Tiny models are overhead-bound: one thread per process avoids oversubscribing 2 cores when tests
# start subprocesses (DDP, kill/resume) and when pytest-xdist runs one worker per core.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
# pytest-xdist: one worker per core. worksteal: each worker takes a contiguous share of the tests (module fixtures
# are built by few workers) and an idle worker takes over the tail of a busy one's queue, so the minutes-long
# docs test (started first, tests/conftest.py) runs beside the rest. Arguments come after these, so a later
# `-n 0` runs serially; `-p no:xdist`, `--pdb` and `--trace` (which xdist cannot run) drop them.
xdist=(-n auto --dist worksteal)
for arg in "$@" ${PYTEST_ADDOPTS:-}; do
  case $arg in no:xdist | -pno:xdist | --pdb | --trace) xdist=() ;; esac
done
exec .venv/bin/python -m pytest -q ${xdist[@]+"${xdist[@]}"} "$@"
