#!/usr/bin/env bash
# Create .venv (if missing) and install the pinned stack + the discl package (editable).
# A second run is a no-op unless requirements.txt or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.discl-installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing requirements (pip; first time ~2 min)"
  # Some machines' pip configs name local index folders that do not exist; pip warns once per package.
  quiet_pip() { .venv/bin/python -m pip "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2); }
  quiet_pip install -q --disable-pip-version-check -r requirements.txt
  quiet_pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
