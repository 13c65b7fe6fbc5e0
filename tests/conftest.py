"""Shared fixtures: a real local Hub server on a free port, and an isolated HF cache per test session.

`huggingface_hub` and `datasets` read `HF_ENDPOINT` when they are imported, so the port is chosen and
the environment set here, at conftest import time, before any test module imports them. The server
itself starts lazily, once per session, the first time a test asks for `local_hub`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import XQUAD_DE, free_port, start_hub


_SESSION_TMP = Path(tempfile.mkdtemp(prefix="rag-de-tests-"))
_HUB_PORT = free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{_HUB_PORT}"
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf-home")
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HF_DATASETS_CACHE", None)
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# This process uploads through LFS (tests of the LFS routes rely on it); the Xet tests run the unchanged
# clients in subprocesses with this variable removed (tests/test_local_hub_xet.py, test_local_hub.py).
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_OFFLINE"] = "0"
os.environ["HF_DATASETS_OFFLINE"] = "0"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")


@dataclass
class HubServer:
    endpoint: str
    data_dir: Path
    token: str          # write token of the default user `admin`, member of org `org`
    process: subprocess.Popen
    port: int


@pytest.fixture(scope="session")
def local_hub() -> HubServer:
    """The session's Hub server at `HF_ENDPOINT`; `HF_TOKEN` is set to its default write token."""
    data_dir = _SESSION_TMP / "hub-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = start_hub(data_dir, _HUB_PORT)
    token = (data_dir / "token").read_text().strip()
    os.environ["HF_TOKEN"] = token
    yield HubServer(os.environ["HF_ENDPOINT"], data_dir, token, proc, _HUB_PORT)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def xquad_de_path() -> Path:
    if not XQUAD_DE.exists():
        pytest.fail(f"{XQUAD_DE} is missing: CI and tests expect ../shared/data/xquad-de beside the checkout")
    return XQUAD_DE


def pytest_collection_modifyitems(config, items):
    """GPU tests are skipped with a visible reason where CUDA is absent (never silently)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marker: gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
