"""Model and Space cards from data: metadata that parses, tables from the run, no token, no local path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from model_cards.model_card import render_model_card
from model_cards.safety import UnsafeCardError, check_publishable
from model_cards.space_card import render_space_card
from rag_de.cli import main as rag_de

RESULTS = {
    "config": {"dataset": "org/spaces-rag-de", "split": "test", "max_new_tokens": 64, "quantization": "nf4"},
    "counts": {"examples": 40, "answerable": 30, "unanswerable": 10},
    "metrics": {
        "rouge_l": {"base": 0.21, "adapter": 0.47, "delta": 0.26},
        "citation_accuracy": {"base": 0.1, "adapter": 0.6333333333333333, "delta": 0.5333333333333333},
        "refusal_recall": {"base": 0.0, "adapter": 0.8, "delta": 0.8},
        "refusal_precision": {"base": None, "adapter": None, "delta": None},
        "eval_loss": {"base": 2.4, "adapter": 1.1, "delta": -1.3},
    },
}


def make_run(tmp_path: Path, results: dict | None = RESULTS, **summary_overrides) -> Path:
    from rag_de.config import to_dict
    from training_space.config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    config = to_dict(TrainConfig())
    config["training"]["output_dir"] = str(run)
    config["hub"]["model_id"] = "org/smol-rag"
    (run / "train_config.yaml").write_text(yaml.safe_dump(config))
    summary = {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset": "org/spaces-rag-de",
               "hub_model_id": "org/smol-rag", "hardware": "1x NVIDIA RTX 4090 (24 GB)", "quantization": "nf4",
               "train_runtime_s": 3723.0, "train_tokens": 1_500_000, "tokens_per_s": 402.9, "peak_memory_gb": 11.3,
               "global_step": 500, "epochs": 2.0, "train_loss": 0.91, "eval_loss": 1.05, **summary_overrides}
    (run / "train_summary.json").write_text(json.dumps(summary))
    if results is not None:
        (run / "eval").mkdir()
        (run / "eval" / "results.json").write_text(json.dumps(results))
    return run


def test_model_card_metadata_sections_and_model_index(tmp_path):
    from huggingface_hub import ModelCard

    text = render_model_card(make_run(tmp_path))
    card = ModelCard(text)
    data = card.data
    assert data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and data.library_name == "peft"
    assert data.datasets == ["org/spaces-rag-de"] and data.language == "de" and data.license == "apache-2.0"
    assert data.pipeline_tag == "text-generation" and "peft" in data.tags and data.model_name == "org/smol-rag"
    got = {e.metric_type: e.metric_value for e in data.eval_results}
    assert got == {"rouge_l": 0.47, "citation_accuracy": 0.6333333333333333, "refusal_recall": 0.8, "eval_loss": 1.1}
    assert {(e.dataset_type, e.dataset_split, e.task_type) for e in data.eval_results} == {
        ("org/spaces-rag-de", "test", "text-generation")}
    for section in ("## What it does", "## Intended use and limits", "## Training data", "## Training procedure",
                    "## Evaluation", "## Usage"):
        assert section in text
    assert "| Citation accuracy | 0.1000 | 0.6333 | +0.5333 |" in text
    assert "| Refusal precision | n/a | n/a | n/a |" in text
    assert "| Eval loss (lower is better) | 2.4000 | 1.1000 | -1.3000 |" in text
    assert "| Training time | 1 h 2 min |" in text and "402.9 tokens/s" in text and "RTX 4090" in text
    assert "| `lora.alpha` | `10` |" in text and "| `training.learning_rate` | `0.0002` |" in text
    assert 'base_id, adapter_id = "HuggingFaceTB/SmolLM2-135M-Instruct", "org/smol-rag"' in text
    assert "render_prompt_text(tokenizer" in text and "SYSTEM_PROMPT" not in text   # the contract, not a copy
    assert str(tmp_path) not in text and "output_dir" not in text


def test_model_card_shows_base_adapter_and_every_baseline_on_the_headline_metrics(tmp_path):
    from huggingface_hub import ModelCard

    headline = {"citation_accuracy_multi": (0.45, 0.82), "refusal_f1": (0.0, 0.74),
                "needless_refusal_rate": (0.0, 0.12), "f1_gr": (0.41, 0.8), "answered_correctness": (0.2, 0.55)}
    metrics = {k: {"base": b, "adapter": a, "delta": a - b} for k, (b, a) in headline.items()}
    rule = {"citation_accuracy_multi": 0.5, "refusal_f1": 0.0, "needless_refusal_rate": 0.0, "f1_gr": 0.4,
            "answered_correctness": 0.3, "threshold": None}
    baselines = {"always_cite_1": rule,
                 "always_refuse": {**rule, "citation_accuracy_multi": 0.0, "refusal_f1": 0.5,
                                   "needless_refusal_rate": 1.0, "f1_gr": 0.25, "answered_correctness": None},
                 "bm25": {**rule, "citation_accuracy_multi": 0.6667, "refusal_f1": 0.61, "threshold": -2.25, "top_score_cut": 2.25,
                          "threshold_split": "validation", "threshold_objective": "f1_gr", "threshold_note": None}}
    text = render_model_card(make_run(tmp_path, {**RESULTS, "metrics": metrics, "baselines": baselines}))
    assert "### Against trivial baselines" in text
    assert ("| Metric | Base | Adapter | Always [1] (never refuses) | Always refuses | "
            "BM25 top chunk, tuned refusal threshold |") in text
    assert "| Citation accuracy (2+ chunks) | 0.450 | 0.820 | 0.500 | 0.000 | 0.667 |" in text
    assert "| Needless-refusal rate (lower is better) | 0.000 | 0.120 | 0.000 | 1.000 | 0.000 |" in text
    assert "| Answered correctness | 0.200 | 0.550 | 0.300 | n/a | 0.300 |" in text
    assert "score is at most 2.250 (tuned on split `validation` for F1-GR (grounded refusal) by the rule" in text
    # the baselines stay in the body: the model-index lists the adapter's figures only
    assert {e.metric_type for e in ModelCard(text).data.eval_results} == set(headline)


def test_model_card_without_evaluation_has_no_model_index(tmp_path):
    from huggingface_hub import ModelCard

    text = render_model_card(make_run(tmp_path, results=None), hub_model_id="org/other-name")
    card = ModelCard(text)
    assert card.data.eval_results is None and "model-index" not in text
    assert card.data.model_name == "org/other-name" and "No evaluation results yet" in text


def test_model_card_refuses_local_base_model(tmp_path):
    run = make_run(tmp_path, base_model=str(tmp_path / "models" / "base"))
    with pytest.raises(ValueError, match="not a Hub id"):
        render_model_card(run)


def test_model_card_refuses_a_token_in_the_config(tmp_path):
    run = make_run(tmp_path)
    config = yaml.safe_load((run / "train_config.yaml").read_text())
    config["training"]["run_name"] = "hf_" + "a1B2c3D4e5" * 4
    (run / "train_config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UnsafeCardError, match="token-like"):
        render_model_card(run)


@pytest.mark.parametrize("leak, match", [
    ("hf_" + "x" * 34, "token-like"),
    ("api_org_" + "Q" * 30, "token-like"),
    ("token: abcdefghijklmnopqrstuv", "token-like"),
    ("see /home/alice/runs/x/adapter", "local path"),
    ("from /tmp/rag-de-run-1/eval", "local path"),
    ("C:\\Users\\bob\\model", "local path"),
])
def test_publish_guard_catches_tokens_and_local_paths(leak, match):
    with pytest.raises(UnsafeCardError, match=match):
        check_publishable(f"# Card\n\nSome text {leak} more text\n")


def test_publish_guard_catches_the_current_token_and_home_dir(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "s3cr3t-value-xyz")
    with pytest.raises(UnsafeCardError, match="current Hugging Face access token"):
        check_publishable("token s3cr3t-value-xyz leaked")
    with pytest.raises(UnsafeCardError, match="local path"):
        check_publishable(f"model at {Path.home()}/models/x")
    text = "Load https://huggingface.co/org/model and org/spaces-rag-de; see `eval/results.json`."
    assert check_publishable(text) == text


def test_demo_space_card_front_matter_and_variables():
    from importlib.metadata import version

    from huggingface_hub import SpaceCard

    text = render_space_card("demo", "org/spaces-rag-de-demo",
                             models=["HuggingFaceTB/SmolLM2-135M-Instruct", "org/smol-rag"],
                             datasets=["org/spaces-rag-de"], suggested_hardware="t4-small")
    data = SpaceCard(text).data
    assert data.sdk == "gradio" and data.sdk_version == version("gradio") and data.app_file == "app.py"
    assert data.models == ["HuggingFaceTB/SmolLM2-135M-Instruct", "org/smol-rag"]
    assert data.datasets == ["org/spaces-rag-de"] and data.license == "apache-2.0"
    assert data.suggested_hardware == "t4-small" and data.title and data.emoji and data.short_description
    for name in ("RAG_DE_BASE_MODEL", "RAG_DE_ADAPTER", "RAG_DE_DATASET", "HF_TOKEN"):
        assert f"`{name}`" in text
    check_publishable(text)


def test_training_space_card_and_cli(tmp_path, capsys):
    from huggingface_hub import SpaceCard

    out = tmp_path / "README.md"
    assert rag_de(["card", "space", "--kind", "training", "--space", "org/train", "--model",
                   "HuggingFaceTB/SmolLM2-135M-Instruct", "--dataset", "org/spaces-rag-de",
                   "--hardware", "a10g-small", "--out", str(out)]) == 0
    data = SpaceCard(out.read_text()).data
    assert data.sdk == "gradio" and data.suggested_hardware == "a10g-small" and data.datasets == ["org/spaces-rag-de"]
    assert "`HF_TOKEN`" in out.read_text()
    capsys.readouterr()
    assert rag_de(["card", "space", "--kind", "demo", "--space", "org/demo"]) == 0
    assert capsys.readouterr().out.startswith("---\ntitle:")


def test_card_dataset_without_stats_is_a_clear_error(tmp_path, capsys):
    assert rag_de(["card", "dataset", "--data", str(tmp_path), "--repo", "org/spaces-rag-de"]) == 2
    assert "stats.json not found" in capsys.readouterr().err


def test_card_model_push_updates_readme_on_the_hub(tmp_path, local_hub):
    from huggingface_hub import HfApi, ModelCard, hf_hub_download

    api = HfApi()
    api.create_repo("org/card-push-test", exist_ok=True)
    run = make_run(tmp_path)
    before = len(api.list_repo_commits("org/card-push-test"))
    assert rag_de(["card", "model", "--run-dir", str(run), "--repo", "org/card-push-test", "--push"]) == 0
    assert len(api.list_repo_commits("org/card-push-test")) == before + 1
    pushed = Path(hf_hub_download("org/card-push-test", "README.md", cache_dir=tmp_path / "dl")).read_text()
    assert pushed == (run / "README.md").read_text()
    assert ModelCard(pushed).data.model_name == "org/card-push-test"


def test_card_space_push_updates_the_space_readme(tmp_path, local_hub):
    from huggingface_hub import HfApi, SpaceCard, hf_hub_download

    HfApi().create_repo("org/card-push-space", repo_type="space", space_sdk="gradio", exist_ok=True)
    assert rag_de(["card", "space", "--kind", "demo", "--space", "org/card-push-space", "--model",
                   "org/smol-rag", "--push"]) == 0
    path = hf_hub_download("org/card-push-space", "README.md", repo_type="space", cache_dir=tmp_path / "dl")
    data = SpaceCard(Path(path).read_text()).data
    assert data.sdk == "gradio" and data.models == ["org/smol-rag"]


@pytest.mark.parametrize("span,refusal,citation,claimed", [(0.0, 0.0, 0.545, False), (0.6, 0.55, 0.8, True)])
def test_model_card_claims_only_what_its_free_generation_measured(tmp_path, span, refusal, citation, claimed):
    metrics = {"gold_span_recall": {"base": 0.16, "adapter": span}, "refusal_f1": {"base": 0.0, "adapter": refusal},
               "citation_accuracy_multi": {"base": 0.0, "adapter": citation}}
    threshold = {"refusal_threshold": 0.8, "tuned_on": "org/spaces-rag-de [validation], 38 rows", "mode": "fused",
                 "objective_value": 0.73, "answer_mode": "extracted",
                 "answer_modes": {"generated": {"score": 0.41}, "extracted": {"score": 0.77}}}
    answer_modes = {"shipped": "extracted", "validation": threshold["answer_modes"],
                    "test": {"extracted": {"gold_span_recall": 0.89, "token_f1": 0.8, "faithfulness": 1.0,
                                           "refusal_f1": 0.71},
                             "generated": {"gold_span_recall": 0.26, "token_f1": 0.3, "faithfulness": 0.9,
                                           "refusal_f1": 0.71}}}
    text = render_model_card(make_run(tmp_path, {**RESULTS, "metrics": metrics, "decision_threshold": threshold,
                                                 "answer_modes": answer_modes}))
    figures = (f"gold-span recall {span:.2f} (base 0.16), refusal F1 {refusal:.2f} (base 0.00), citation accuracy "
               f"on 2+ chunk prompts {citation:.2f} (base 0.00)")
    assert " ".join(figures.split()) in " ".join(text.split())
    assert ("its own free generation does so" in text) is claimed
    assert ("does not do this reliably yet" in text) is not claimed
    assert "**extracted** (the cited chunk's sentence sharing the most question words)" in " ".join(text.split())
    assert "| generated (the adapter's own text after the forced lead) | 0.260 | 0.300 | 0.900 | 0.710 |" in text
