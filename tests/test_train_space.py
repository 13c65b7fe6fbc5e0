"""The training Space: the app starts a real `rag-de train` job, streams its log and loss, links the adapter;
`rag-de deploy training-space` puts app, requirements, card and packages on the (local) Hub in one commit."""

from __future__ import annotations

import os
import uuid

import pytest
import yaml
from helpers import build_model_dir, tiny_config, write_dataset

from training_space import app as app_mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-space")
    return build_model_dir(root / "model"), write_dataset(root / "data")


def test_request_maps_form_fields_to_train_flags(tmp_path):
    request = app_mod.JobRequest(dataset="org/ds", base_model="org/base", preset="cpu-smollm2",
                                 hub_model_id="org/adapter", learning_rate=5e-4, max_steps=12, lora_r=8,
                                 packing=True)
    cmd = request.command(tmp_path / "run")
    assert cmd[1:4] == ["-m", "rag_de", "train"]
    assert cmd[cmd.index("--config") + 1] == str(app_mod.PRESETS["cpu-smollm2"])
    pairs = dict(zip(cmd[4::2], cmd[5::2]))
    assert pairs["--dataset"] == "org/ds" and pairs["--base-model"] == "org/base"
    assert pairs["--hub-model-id"] == "org/adapter" and pairs["--training.max_steps"] == "12"
    assert pairs["--training.learning_rate"] == "0.0005" and pairs["--lora.r"] == "8"
    assert pairs["--data.packing"] == "true" and "--lora.alpha" not in pairs


def test_losses_from_trainer_log_lines():
    log = ("  5%|▌ | 1/20 [00:43<13:47]{'loss': '1.412', 'grad_norm': '0.9', 'epoch': '0.01'}\n"
           "{'loss': '1.2', 'epoch': '0.02'}\r 10%|█\n{'eval_loss': '1.1', 'eval_runtime': '3'}\n"
           "[train] not a dict line {\n")
    assert app_mod.losses_from_log(log) == [
        {"step": 1, "loss": 1.412, "kind": "train"}, {"step": 2, "loss": 1.2, "kind": "train"},
        {"step": 2, "loss": 1.1, "kind": "eval"}]


def test_app_job_runs_streams_and_links(tiny, tmp_path):
    model_dir, data_dir = tiny
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(tiny_config(str(model_dir), str(data_dir), tmp_path / "unused")))
    job = app_mod.Job(app_mod.JobRequest(dataset=str(data_dir), base_model="", preset=str(preset),
                                         max_steps=3), root=tmp_path / "jobs")
    assert job.process.wait(300) == 0, job.log_tail()
    log = job.log_tail()
    assert log.startswith("$ rag-de train --config") and "--training.max_steps 3" in log
    points = app_mod.loss_points(job)
    assert [p["step"] for p in points if p["kind"] == "train"] == [1, 2, 3]
    assert any(p["kind"] == "eval" for p in points)
    assert job.status() == "fertig"
    assert "Fertig (3 Schritte" in app_mod.adapter_link(job)


def test_app_builds_with_the_form(monkeypatch):
    monkeypatch.setenv("RAG_DE_DATASET", "org/my-ds")
    app = app_mod.build_app()
    labels = {getattr(block, "label", None) for block in app.blocks.values()}
    assert {"Datensatz (Hub-Repo)", "Basismodell", "Preset", "Adapter-Repo (Push-Ziel)", "Log"} <= labels
    values = {block.label: getattr(block, "value", None) for block in app.blocks.values()
              if getattr(block, "label", None)}
    assert values["Datensatz (Hub-Repo)"] == "org/my-ds"


def test_deploy_training_space_to_local_hub(local_hub, tmp_path):
    from huggingface_hub import HfApi

    from rag_de.cli import main

    space = f"org/train-space-{uuid.uuid4().hex[:6]}"
    assert main(["deploy", "training-space", "--space", space, "--dataset", "org/spaces-rag-de",
                 "--base-model", "HuggingFaceTB/SmolLM2-135M-Instruct", "--hub-model-id", "org/adapter"]) == 0
    api = HfApi()
    files = set(api.list_repo_files(space, repo_type="space"))
    assert {"app.py", "requirements.txt", "README.md", "training_space/app.py", "training_space/train.py",
            "training_space/configs/cpu-smollm2.yaml", "rag_de/modeling.py", "dataset_builder/contract.py",
            "model_cards/model_card.py"} <= files
    assert not any("__pycache__" in f for f in files)
    commits = api.list_repo_commits(space, repo_type="space")
    assert sum(c.title.startswith("Deploy the spaces-rag-de training Space") for c in commits) == 1
    card = open(api.hf_hub_download(space, "README.md", repo_type="space")).read()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    token = os.environ["HF_TOKEN"]
    for name in ("app.py", "README.md", "requirements.txt"):
        assert token not in open(api.hf_hub_download(space, name, repo_type="space")).read()
    variables = api.get_space_variables(space)
    assert variables["RAG_DE_DATASET"].value == "org/spaces-rag-de"
    assert variables["RAG_DE_HUB_MODEL_ID"].value == "org/adapter"
