"""`rag-de publish` through the local Hub: `load_dataset("org/...")` gives train/validation/test with the
schema's columns, for the shipped sample data and for XQuAD-de; one commit per publish; Hub input."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dataset_builder.build_config import BuildConfig
from dataset_builder.pipeline import SAMPLE_DATA, BuildInputs, build
from dataset_builder.schema import COLUMNS, SPLITS, load_built
from rag_de.cli import main as rag_de

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"


def sample_inputs() -> BuildInputs:
    if (SAMPLE_DATA / "qa.jsonl").exists():
        return BuildInputs.sample()
    return BuildInputs(corpora=[(str(FIXTURE / "catalog"), str(FIXTURE / "qa.jsonl"))])


def check_hub_dataset(repo: str, local_dir: Path, stats: dict):
    from datasets import load_dataset

    remote = load_dataset(repo)
    local = load_built(local_dir)
    assert set(remote) == set(SPLITS)
    for split in SPLITS:
        assert tuple(remote[split].column_names) == COLUMNS
        assert len(remote[split]) == stats["splits"][split]["examples"]
        assert remote[split]["id"] == local[split]["id"]
        assert remote[split].features == local[split].features
    row = remote["train"][0]
    assert isinstance(row["contexts"], list) and set(row["contexts"][0]) == {"id", "title", "source", "text", "metadata"}
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    return remote


def test_publish_sample_data_then_load_dataset(local_hub, tmp_path, capsys):
    from huggingface_hub import DatasetCard, HfApi

    stats = build(sample_inputs(), tmp_path / "data", progress=False)
    repo = "org/spaces-rag-de"
    assert rag_de(["publish", "--data", str(tmp_path / "data"), "--repo", repo]) == 0
    assert f"[publish] {repo}" in capsys.readouterr().out
    files = set(HfApi().list_repo_files(repo, repo_type="dataset"))
    assert {f"data/{s}-00000-of-00001.parquet" for s in SPLITS} | {"README.md"} <= files
    card = DatasetCard.load(repo, repo_type="dataset")
    assert card.data.license == ("cc0-1.0" if stats["licenses"] == ["cc0-1.0"] else "other")
    assert card.data.language == "de" and "question-answering" in card.data.task_categories
    assert [f["split"] for f in card.data.configs[0]["data_files"]] == list(SPLITS)
    from dataset_builder.contract import SYSTEM_PROMPT

    assert SYSTEM_PROMPT in card.text and 'load_dataset("org/spaces-rag-de")' in card.text   # the prompt, verbatim
    check_hub_dataset(repo, tmp_path / "data", stats)


def test_publish_xquad_inherits_share_alike(local_hub, xquad_de_path, tmp_path):
    from huggingface_hub import DatasetCard

    stats = build(BuildInputs(squad=[str(xquad_de_path)]), tmp_path / "data", progress=False)
    repo = f"org/spaces-rag-de-xquad-{uuid.uuid4().hex[:6]}"
    assert rag_de(["publish", "--data", str(tmp_path / "data"), "--repo", repo, "--private"]) == 0
    card = DatasetCard.load(repo, repo_type="dataset")
    assert card.data.license == "cc-by-sa-4.0" and "XQuAD" in card.text and "Share-alike" in card.text
    remote = check_hub_dataset(repo, tmp_path / "data", stats)
    assert set(remote["train"]["origin"]) == {"xquad-de"}


def test_republish_is_one_commit_and_removes_stale_splits(local_hub, tmp_path):
    from huggingface_hub import HfApi

    from dataset_builder.publish import publish

    api = HfApi()
    inputs = BuildInputs(corpora=[(str(FIXTURE / "catalog"), str(FIXTURE / "qa.jsonl"))])
    repo = f"org/rag-de-republish-{uuid.uuid4().hex[:6]}"
    build(inputs, tmp_path / "all", progress=False)
    publish(tmp_path / "all", repo)
    commits = len(api.list_repo_commits(repo, repo_type="dataset"))
    build(inputs, tmp_path / "train-only", BuildConfig(train_fraction=1.0, validation_fraction=0.0, test_fraction=0.0),
          progress=False)
    publish(tmp_path / "train-only", repo)
    assert len(api.list_repo_commits(repo, repo_type="dataset")) == commits + 1
    data_files = sorted(f for f in api.list_repo_files(repo, repo_type="dataset") if f.startswith("data/"))
    assert data_files == ["data/train-00000-of-00001.parquet"]


def test_publish_without_token_is_a_clear_error(local_hub, tmp_path, monkeypatch, capsys):
    build(BuildInputs(corpora=[(str(FIXTURE / "catalog"), str(FIXTURE / "qa.jsonl"))]), tmp_path / "d", progress=False)
    monkeypatch.delenv("HF_TOKEN")
    assert rag_de(["publish", "--data", str(tmp_path / "d"), "--repo", "org/never"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag-de publish: error: ") and "no Hugging Face token" in err


def test_squad_input_from_a_hub_dataset_id(local_hub, tmp_path):
    from datasets import Dataset

    contexts = {f"Artikel {i}": f"Das Modul {i} hat {i + 2} ECTS-Punkte und endet mit einer Klausur." for i in range(6)}
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for i, (title, context) in enumerate(contexts.items()):
        span = f"{i + 2} ECTS-Punkte"
        rows["id"].append(f"h{i}")
        rows["title"].append(title)
        rows["context"].append(context)
        rows["question"].append(f"Wie viele ECTS hat Modul {i}?")
        rows["answers"].append({"text": [span], "answer_start": [context.index(span)]})
    repo = f"org/squad-mini-{uuid.uuid4().hex[:6]}"
    Dataset.from_dict(rows).push_to_hub(repo)
    stats = build(BuildInputs(squad=[f"{repo}:train"]), tmp_path / "out", BuildConfig(unanswerable_share=0),
                  progress=False)
    assert stats["totals"]["examples"] == 6 and stats["sources"][0]["kind"] == "squad-hub"
    spans = {r["id"]: r["gold_span"] for ds in load_built(tmp_path / "out").values() for r in ds}
    assert spans == {f"h{i}": f"{i + 2} ECTS-Punkte" for i in range(6)}


def test_unknown_hub_dataset_is_a_clear_error(local_hub, tmp_path, capsys):
    assert rag_de(["build", "--squad", "org/does-not-exist", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag-de build: error: ") and "org/does-not-exist: cannot load the Hub dataset" in err
