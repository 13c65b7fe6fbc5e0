"""`rag-de deploy demo` against the local Hub: one commit with app, modules, requirements and card;
variables and the token secret through the API; the uploaded repo imports on its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SPACE = "org/demo-deploy-test"
ADAPTER = "org/some-adapter"
DATASET = "org/some-data"


@pytest.fixture(scope="module")
def deployed(local_hub, tmp_path_factory):
    from local_hub.admin import create_token
    from rag_de.cli import main

    space_token = create_token(local_hub.data_dir, "space-reader", "read", orgs=("org",))
    os.environ["RAG_DE_SPACE_TOKEN"] = space_token
    try:
        assert main(["deploy", "demo", "--space", SPACE, "--adapter", ADAPTER, "--dataset", DATASET,
                     "--top-k", "4", "--fast-generation", "auto"]) == 0
    finally:
        del os.environ["RAG_DE_SPACE_TOKEN"]
    return local_hub, space_token


def test_space_holds_app_modules_requirements_and_a_card_in_one_commit(deployed):
    from huggingface_hub import HfApi, SpaceCard

    api = HfApi()
    files = set(api.list_repo_files(SPACE, repo_type="space"))
    assert {"app.py", "requirements.txt", "README.md", "demo_space/app.py", "demo_space/generation.py",
            "dataset_builder/contract.py", "dataset_builder/retrieval.py", "dataset_builder/chunking.py",
            "rag_de/modeling.py", "rag_de/base_model.py", "rag_de/__init__.py"} <= files
    assert not any(f.startswith(("local_hub/", "training_space/", "tests/")) or f.endswith("cli.py") for f in files)
    commits = api.list_repo_commits(SPACE, repo_type="space")
    assert commits[0].title.startswith("Deploy demo")
    # One commit brought everything: the revision before it holds none of the files (only what
    # create_repo wrote: .gitattributes and a stub README.md, replaced by the card in the same commit).
    before = set(api.list_repo_files(SPACE, repo_type="space", revision=commits[1].commit_id)) if len(commits) > 1 \
        else set()
    assert not before & (files - {".gitattributes", "README.md"})
    info = api.space_info(SPACE)
    assert info.sdk == "gradio"

    card = SpaceCard.load(SPACE, repo_type="space")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert ADAPTER in card.data.models and card.data.datasets == [DATASET]
    assert "RAG_DE_ADAPTER" in card.text
    reqs = api.hf_hub_download(SPACE, "requirements.txt", repo_type="space")
    lines = set(open(reqs).read().splitlines())
    assert {"torch==2.13.0", "gradio>=5,<7", "bitsandbytes>=0.50,<1", "peft>=0.21,<1", "bm25s>=0.2,<1",
            "pypdf>=4", "huggingface-hub>=2.4,<3"} <= lines


def test_variables_and_secret_set_through_the_api_and_no_token_in_files(deployed, tmp_path):
    import httpx
    from huggingface_hub import HfApi, snapshot_download

    hub, space_token = deployed
    api = HfApi()
    variables = api.get_space_variables(SPACE)
    assert variables["RAG_DE_ADAPTER"].value == ADAPTER
    assert variables["RAG_DE_DATASET"].value == DATASET
    assert variables["RAG_DE_TOP_K"].value == "4"
    assert variables["RAG_DE_BASE_MODEL"].value == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "HF_TOKEN" not in variables

    response = httpx.get(f"{hub.endpoint}/api/spaces/{SPACE}/secrets",
                         headers={"Authorization": f"Bearer {hub.token}"})
    response.raise_for_status()
    assert "HF_TOKEN" in response.json() and space_token not in response.text  # names only, never values

    folder = snapshot_download(SPACE, repo_type="space", local_dir=tmp_path / "space")
    from pathlib import Path

    for path in Path(folder).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert space_token.encode() not in data and hub.token.encode() not in data, path


def test_uploaded_space_imports_from_its_own_repo(deployed, tmp_path):
    """The Space must run from its repo alone: its modules, not this checkout's, are the ones imported."""
    from huggingface_hub import snapshot_download

    folder = snapshot_download(SPACE, repo_type="space", local_dir=tmp_path / "space")
    check = (
        "import sys, os, app, demo_space.app, demo_space.settings as s\n"
        "mods = [m for n, m in sys.modules.items() if n.split('.')[0] in "
        "('demo_space', 'dataset_builder', 'rag_de', 'model_cards')]\n"
        "outside = [m.__name__ for m in mods if not os.path.realpath(m.__file__).startswith(os.getcwd())]\n"
        "assert not outside, outside\n"
        "assert 'model_cards' not in {m.__name__.split('.')[0] for m in mods}\n"
        "print(s.DemoConfig.from_env().adapter)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["RAG_DE_ADAPTER"] = ADAPTER
    result = subprocess.run([sys.executable, "-c", check], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ADAPTER
