"""Every command block of README.md and docs/*.md, run as written against the mini roots and tiny models.

The blocks run in a lab folder that looks like a user's machine: ``data/wilds``, ``data/imagenet`` and
``data/my_images`` are the mini iWildCam, ImageNet-LT and ImageFolder roots, the repository's ``scripts/``,
``data_generation/``, ``curriculum/`` and ``.venv`` are reachable from it, and ``python`` / ``torchrun`` are the
venv's. What a block may have changed before it runs, and nothing else:
- the absolute example paths ``/data/...`` become ``<lab>/data/...``;
- the values of the variables it names (``NPROC=8`` → 1 on a CPU machine, ``GPUS=8`` → 2 gloo processes,
  ``PARTS=16`` → 2, ``OPENAI_API_KEY``, ``LLM_URL`` → a local chat-completions server);
- the environment: the tiny models' offline ``HF_HOME`` and a ``DISCL_DEFAULTS`` file with tiny sizes (1 epoch,
  1 seed, 2 strengths, 32×20 px, the tiny CLIP, at most 2 hard images per class, the local LLM server), and an
  ``sbatch`` that runs the job script here, once per array task, on a CPU "partition" (``DEVICE=cpu``).
``python <script>`` lines run in-process (``run_cli(main, argv)``, exit code 0 required: the same code path as the
process without its start-up time); every other line (flows, ``torchrun``, ``sbatch``, pipes) runs in ``bash``.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import subprocess
import threading
from pathlib import Path

import pytest

from helpers import REPO_ROOT, load_script

from discl.cli import run_cli

DOCS = ["README.md", *sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "docs").glob("*.md"))]

# (file, block index) in the order they run (later blocks read what earlier ones wrote), with the variables whose
# values change. Every ```bash block of the docs is here or in NOT_RUN.
PLAN = [
    ("docs/hard-samples-and-prompts.md", 0, {}),
    ("docs/hard-samples-and-prompts.md", 1, {"OPENAI_API_KEY": "sk-rehearsal", "LLM_URL": "{llm}"}),
    ("docs/generation.md", 0, {"GPUS": "2"}),
    ("docs/filtering-and-training-data.md", 0, {}),
    ("docs/filtering-and-training-data.md", 1, {}),
    ("docs/train-iwildcam.md", 0, {"GPUS": "2"}),
    ("docs/train-imagenet-lt.md", 0, {"GPUS": "2"}),
    ("docs/own-dataset.md", 0, {}),
    ("docs/models.md", 0, {}),
    ("README.md", 1, {"NPROC": "1", "OPENAI_API_KEY": "sk-rehearsal"}),
    ("README.md", 2, {"PARTS": "2"}),
    ("docs/cluster.md", 0, {}),
    ("docs/cluster.md", 1, {}),
    ("docs/cluster.md", 2, {}),
]
NOT_RUN = {
    ("README.md", 0): "the quickstart and the test suite themselves (the suite would run itself; the quickstart's "
                      "stages are these flows on the same tiny world)",
    ("README.md", 3): "experiments over the paper's full matrix on real data and SLURM (quickstart stage 70 runs "
                      "the tiny matrix)",
    ("README.md", 4): "the digits experiment, 50 CPU training runs (28 min); tests/test_digits_world.py checks its "
                      "world, experiments/digits.toml is parsed by tests/test_experiments.py",
    ("README.md", 5): "benchmarks: timed on purpose; their tests run each at small sizes",
    ("docs/digits-world.md", 0): "the digits world's stages: the quickstart runs them (stages 10-50) on the same "
                                 "world, tests/test_digits_world.py checks the installed models",
    ("docs/digits-world.md", 1): "retrains the committed weights (about 11 CPU-minutes); tests/test_digits_world.py "
                                 "trains a few steps of each model twice and compares the bytes",
    ("docs/digits-world.md", 2): "the digits experiment, 50 CPU training runs (28 min)",
    ("docs/experiments.md", 0): "the paper's experiment matrix on real data (quickstart stage 70 runs the tiny one)",
    ("docs/experiments.md", 1): "the experiment tables of the paper's matrix (needs its finished runs)",
}

FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def blocks(doc: str) -> list[str]:
    """The ```bash blocks of a document, in order."""
    return FENCE.findall((REPO_ROOT / doc).read_text(encoding="utf-8"))


def test_every_block_is_rehearsed_or_says_why_not():
    found = {(doc, i) for doc in DOCS for i in range(len(blocks(doc)))}
    planned = {(doc, i) for doc, i, _ in PLAN}
    assert not planned & set(NOT_RUN)
    assert found == planned | set(NOT_RUN), sorted(found ^ (planned | set(NOT_RUN)))


# --- the lab ---------------------------------------------------------------------------------------------------

class _Chat(http.server.BaseHTTPRequestHandler):
    """A chat-completions endpoint that answers with ten long scene descriptions."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        lines = [f"{i}. a quiet wide photograph of the animal standing alone near a river bank in soft morning "
                 f"light with distant hills number {i}" for i in range(1, 11)]
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "\n".join(lines)}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


SBATCH = """#!/usr/bin/env bash
# sbatch for the rehearsal: run the job script here, once per array task, with SLURM's variables, on a CPU node
set -euo pipefail
array=""; script=""
for arg in "$@"; do
  case "$arg" in --array=*) array="${arg#--array=}" ;; -*) ;; *) [ -n "$script" ] || script="$arg" ;; esac
done
export SLURM_SUBMIT_DIR="$PWD" SLURM_JOB_ID=$$ DEVICE=cpu
if [ -z "$array" ]; then exec bash "$script"; fi
first=${array%-*}; last=${array#*-}
for task in $(seq "$first" "$last"); do
  SLURM_ARRAY_JOB_ID=$$ SLURM_ARRAY_TASK_ID=$task SLURM_ARRAY_TASK_COUNT=$((last - first + 1)) bash "$script"
done
"""


@pytest.fixture(scope="module")
def lab(hf_home, mini_iwildcam, mini_imagenet_lt, tmp_path_factory):
    """The folder the blocks run in, its environment, and the local LLM server."""
    from discl import tiny
    from discl.tiny.models import SD15_ID, install_model

    install_model(hf_home, SD15_ID)  # docs/generation.md's --backend sd (the SDXL refiner is there already)
    root = tmp_path_factory.mktemp("lab")
    (root / "data").mkdir()
    (root / "data" / "wilds").symlink_to(mini_iwildcam)
    (root / "data" / "imagenet").symlink_to(mini_imagenet_lt)
    (root / "data" / "my_images").symlink_to(tiny.make_mini_folder(tmp_path_factory.mktemp("my_images")))
    for name in ("scripts", "data_generation", "curriculum", "bench", "experiments", ".venv", "requirements.txt",
                 "pyproject.toml", "src"):
        (root / name).symlink_to(REPO_ROOT / name)
    (root / "bin").mkdir()
    (root / "bin" / "sbatch").write_text(SBATCH)
    (root / "bin" / "sbatch").chmod(0o755)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    llm = f"http://127.0.0.1:{server.server_address[1]}/v1"
    site = root / "tiny-defaults.json"
    site.write_text(json.dumps({
        "model": "discl-tiny-clip", "pretrained": "", "device": "cpu", "workers": 0, "batch_size": 16,
        "eval_batch_size": 64, "per_class_cap": 2, "seeds": [10], "strengths": [0.5, 0.9], "steps": 10,
        "resolution": "32x20", "max_retries": 1, "base_url": llm, "threshold": -1, "guidance_levels": [],
        "level_starts": [], "epochs": 1, "curriculum_epoch": 1, "real_sample_size": 16, "width": 4,
        "crop_size": 32, "resize_size": 36}))
    env = dict(os.environ)
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DISCL_DEFAULTS=str(site),
               PATH=f"{root / 'bin'}:{REPO_ROOT / '.venv' / 'bin'}:{env['PATH']}", OMP_NUM_THREADS="1",
               PYTHONHASHSEED="0")
    env.pop("OPENAI_API_KEY", None)
    yield {"root": root, "env": env, "llm": llm}
    server.shutdown()


# --- running a block ---------------------------------------------------------------------------------------------

def logical_lines(text: str) -> list[str]:
    """Lines with their backslash continuations joined; blank and comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def expand(line: str, variables: dict[str, str]) -> str:
    """``$NAME`` / ``${NAME}`` of the block's own variables (other ones are left to bash)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), line)


def changed(text: str, lab: dict, values: dict[str, str]) -> str:
    """The block with the example paths and the named variables' values changed (nothing else)."""
    text = re.sub(r"(?<![\w.])/data/", f"{lab['root']}/data/", text)
    for name, value in values.items():
        assert re.search(rf"(?<![\w$]){name}=", text), f"the block names no {name}"
        text = re.sub(rf"(?<![\w$]){name}=\S+", f"{name}={value.format(**lab)}", text)
    return text


def run_block(text: str, lab: dict, monkeypatch) -> None:
    """Run the block's commands in order, as bash would (see the module doc); any failure fails the test."""
    variables: dict[str, str] = {}
    env = dict(lab["env"])
    for line in logical_lines(text):
        line = expand(line, variables)
        words = shlex.split(line, comments=True)
        assignments = {}
        while words and re.fullmatch(r"\w+=.*", words[0]):
            name, value = words.pop(0).split("=", 1)
            assignments[name] = value
        if not words:
            variables.update(assignments)  # NAME=value: a shell variable of the block
            continue
        if words[0] == "export":
            for word in words[1:]:
                name, value = word.split("=", 1)
                variables[name] = env[name] = value
            continue
        if words[0] == "source":
            assert (lab["root"] / words[1]).is_file(), words  # the venv: already first on PATH
            continue
        script = words[1] if len(words) > 1 else ""
        if words[0] == "python" and script.endswith(".py") and (REPO_ROOT / script).is_file() and "|" not in line:
            with monkeypatch.context() as patch:
                for name, value in {**env, **assignments}.items():
                    if os.environ.get(name) != value:
                        patch.setenv(name, value)
                patch.chdir(lab["root"])
                with pytest.raises(SystemExit) as stop:
                    run_cli(load_script(script).main, words[2:])
            assert stop.value.code in (0, None), f"exit {stop.value.code}: {line}"
            continue
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", line], cwd=lab["root"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-6000:]}"


@pytest.fixture()
def umask_022():
    """A lab's usual umask: group and others may read what is written."""
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.mark.minutes_long  # 8-9 minutes on 2 cores: under xdist it starts first (conftest.py)
@pytest.mark.usefixtures("one_torch_thread", "umask_022")
def test_the_documented_commands_run_as_written(lab, monkeypatch):
    for doc, index, values in PLAN:
        text = changed(blocks(doc)[index], lab, values)
        try:
            run_block(text, lab, monkeypatch)
        except BaseException as err:
            raise AssertionError(f"{doc}, block {index + 1}: {err}") from err
    root = lab["root"]
    # everything the pipeline wrote (images, tables, checkpoints, records, events) is readable by the group under
    # umask 022 (runs/tiny_world is the test harness's model cache, written by safetensors, not by the pipeline)
    written = [p for top in ("runs", "data/syn") for p in (root / top).rglob("*")
               if p.is_file() and "tiny_world" not in p.parts]
    assert written and not [p for p in written if p.stat().st_mode & 0o044 != 0o044]
    # what the flows left: tables complete, runs with records and TensorBoard events, a scored spectrum
    assert json.loads((root / "runs/iwildcam/data/tables.json").read_text())["complete"]
    for run in ("runs/iwildcam/flyp_adaptive", "runs/imagenet_lt/discl_ce_full", "runs/lt/discl_ce"):
        records = sorted((root / run / "run_records").glob("*.json"))
        assert records and json.loads(records[-1].read_text())["status"] == "finished", run
        assert list((root / run / "tensorboard").glob("events.*")), run
    assert (root / "data/syn/iwildcam/clip_scores.csv").is_file()
    assert (root / "data/syn/imagenet_lt/prompts.json").is_file()
    assert (root / "runs/tiny_world/hf_home").is_dir()


@pytest.mark.parametrize("script, name", [
    ("data_generation_wilds.sh", "WILDS_ROOT"), ("data_generation_wilds.sh", "WILDS"),
    ("data_generation_inlt.sh", "IMAGENET_ROOT"), ("data_generation_inlt.sh", "INLT"),
    ("train_iwildcam.sh", "WILDS_ROOT"), ("train_iwildcam.sh", "WILDS"),
    ("train_imagenet_lt.sh", "INLT"), ("train_imagenet_lt.sh", "IMAGENET_ROOT"),
])
def test_every_flow_takes_the_old_names_of_its_root(script, name, tmp_path):
    """docs/cluster.md: the old names of DATA_ROOT still work (the flow goes on to check the folder it names)."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATA_ROOT", "SYN")}
    env.update({name: str(tmp_path / "no_root"), "SYN": str(tmp_path / "syn"), "OUTPUT": str(tmp_path / "syn")})
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "DATA_ROOT is not set" not in done.stderr
    assert str(tmp_path / "no_root") in done.stderr, done.stderr
