"""Session fixtures: tiny real models under the real hub ids, mini datasets in the real layouts.

The HF cache location and offline flags must be set before any Hugging Face library is imported
(their constants are read at import time), hence the module-level environment set-up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_HF_HOME = Path(tempfile.mkdtemp(prefix="discl-hf-home-"))
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
_TABLE_CACHE = Path(tempfile.mkdtemp(prefix="discl-table-cache-"))
os.environ["DISCL_TABLE_CACHE"] = str(_TABLE_CACHE)  # validated table copies (discl.tablecache): not the user's

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HF_HOME, ignore_errors=True)
    shutil.rmtree(_TABLE_CACHE, ignore_errors=True)


# Parallel runs (scripts/test.sh: pytest-xdist, ``-n auto --dist worksteal``). Every worker is a process with its
# own session: its own ``_HF_HOME`` above (the tiny models are installed once per worker, nothing is shared) and
# its own ``tmp_path_factory`` base (``.../popen-gw<N>``).


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "minutes_long: runs for minutes (about half of the suite's time); an xdist worker starts it first")


def pytest_collection_modifyitems(config, items):
    """On xdist workers, the ``minutes_long`` tests come first (the order is otherwise the collection's).

    worksteal hands each worker a contiguous share of the collection and lets an idle worker take the tail half of
    a busy one's queue. Started first, the minutes-long test runs beside the rest of the suite; started late, it
    would run alone at the end. Mark one test only: all marked tests land in the first worker's share, and a worker
    keeps the test after its running one, so a second marked test would wait there for the first to finish."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("minutes_long") is None)  # stable: the rest keep order


@pytest.fixture(scope="session", autouse=True)
def tiny_open_clip_config() -> Path:
    """The tiny open_clip config in ``$HF_HOME/open_clip_configs``, where ``discl.models`` looks it up by name."""
    from discl.tiny.models import register_tiny_open_clip

    return register_tiny_open_clip()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest, and steadiest on 2 shared cores, on one intra-op thread (``usefixtures``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def hf_home() -> Path:
    """An offline HF cache holding tiny models under the real default ids."""
    from discl import tiny

    tiny.install_tiny_models(_HF_HOME)
    return _HF_HOME


@pytest.fixture(scope="session")
def mini_iwildcam(tmp_path_factory) -> Path:
    """A WILDS root dir holding ``iwildcam_v2.0/`` (loads with ``wilds.get_dataset``)."""
    from discl import tiny

    return tiny.make_mini_iwildcam(tmp_path_factory.mktemp("wilds"))


@pytest.fixture(scope="session")
def mini_imagenet_lt(tmp_path_factory) -> Path:
    """An ImageNet-LT root with ``ImageNet_LT_{train,val,test}.txt`` and the images they list."""
    from discl import tiny

    return tiny.make_mini_imagenet_lt(tmp_path_factory.mktemp("imagenet_lt"))


@pytest.fixture()
def script_env(hf_home) -> dict:
    """Environment for running an entry script in a subprocess, offline, against the tiny models."""
    env = dict(os.environ)
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONHASHSEED="0")
    return env

