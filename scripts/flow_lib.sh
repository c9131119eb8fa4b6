# Helpers of the flow scripts (sourced, not run): the repository, the python, per-stage arguments, input checks.
# A flow keeps the caller's working directory: relative paths in its variables are relative to where it is run.

REPO="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PY:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi

# die MESSAGE: one line on stderr, exit 2 (the entry scripts' code for bad input)
die() { echo "error: $*" >&2; exit 2; }
# require VAR MESSAGE: VAR must be set and not empty
require() { [ -n "${!1:-}" ] || die "$1 is not set: $2"; }

# stage_args NAME VALUE: the words of VALUE (shell quoting honoured: HARD_ARGS="--pretrained ''") into array NAME
stage_args() {
  local __name=$1 __value=${2:-}
  eval "$__name=($__value)" || die "cannot parse the arguments of $__name: $__value"
}

# need_dir VAR PATH WHAT / need_file VAR PATH WHAT: an input that must exist, checked before any heavy work
need_dir() { [ -d "$2" ] || die "$1=$2: $3 not found (a folder)"; }
need_file() { [ -f "$2" ] || die "$1=$2: $3 not found"; }
# not_a_file VAR PATH: an output folder that must not be an existing file
not_a_file() { [ ! -e "$2" ] || [ -d "$2" ] || die "$1=$2 is a file; it must be a folder"; }

# wants STEP: whether STEP is in $STEPS (default: every step of the flow)
wants() { [ -z "${STEPS:-}" ] || [[ " $STEPS " == *" $1 "* ]]; }

# gpu_count: GPUs this job may use (SLURM's allocation, else CUDA_VISIBLE_DEVICES, else nvidia-smi; 0 if none)
gpu_count() {
  if [ -n "${SLURM_GPUS_ON_NODE:-}" ]; then echo "${SLURM_GPUS_ON_NODE%%(*}"; return; fi
  if [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
    if [ -z "$CUDA_VISIBLE_DEVICES" ] || [ "$CUDA_VISIBLE_DEVICES" = "-1" ]; then echo 0; return; fi
    echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .; return
  fi
  { nvidia-smi --list-gpus 2>/dev/null || true; } | grep -c "^GPU" || true
}

# note_no_gpu: say so when the steps will run on CPU (fine for the tiny world, far too slow for the real data)
note_no_gpu() {
  if [ "$(gpu_count)" -eq 0 ]; then
    echo "note: no GPU visible (CUDA_VISIBLE_DEVICES, nvidia-smi): the steps run on CPU" >&2
  fi
}

# launch NPROC SCRIPT ARGS...: python, or torchrun over NPROC processes on this node
launch() {
  local nproc=$1; shift
  if [ "$nproc" -gt 1 ]; then
    "$PY" -m torch.distributed.run --standalone --nproc_per_node "$nproc" "$@"
  else
    "$PY" "$@"
  fi
}

# tables_complete FOLDER: build_data.py finished writing FOLDER's tables (tables.json says complete)
tables_complete() { [ -f "$1/tables.json" ] && grep -q '"complete": true' "$1/tables.json"; }

# step NAME: a header line in the flow's log
step() { echo "== $(date '+%Y-%m-%d %H:%M:%S') $*"; }
