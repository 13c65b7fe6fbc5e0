"""`rag-de export merged|gguf` on a tiny random Llama with a LoRA adapter whose B matrices are non-zero
(so the merge changes the weights), through the real CLI, transformers, peft, gguf and the local Hub.

Shows: merged == base + adapter (max |logit diff| <= 1e-4 in fp32, same greedy answers); the f32/f16 GGUF
loads back with transformers (`gguf_file=`) and answers the contract's prompts like the merged model; the
Modelfile renders the contract's prompt exactly; bad input fails before any weight loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dataset_builder.contract import SYSTEM_PROMPT, contexts_from_column, render_prompt_text, render_user_turn
from rag_de.cli import main
from helpers import greedy, load_gguf, logits, prompts, rows, save_lora, save_tiny_base


@pytest.fixture(scope="module")
def stack(local_hub, tmp_path_factory):
    """Tiny base + adapter on the local Hub (`org/export-tiny-*`), the adapter with a card that has results."""
    from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

    work = tmp_path_factory.mktemp("export")
    api = HfApi()
    ids = {"base": "org/export-tiny-base", "adapter": "org/export-tiny-adapter"}
    base_dir = save_tiny_base(work / "base")
    adapter_dir = save_lora(base_dir, work / "adapter", ids["base"])
    card = ModelCard.from_template(ModelCardData(
        base_model=ids["base"], datasets=["org/spaces-rag-de"], license="apache-2.0", model_name=ids["adapter"],
        eval_results=[EvalResult(task_type="text-generation", dataset_type="org/spaces-rag-de",
                                 dataset_name="org/spaces-rag-de", dataset_split="test",
                                 metric_type="citation_accuracy", metric_name="Citation accuracy",
                                 metric_value=0.47)]))
    (adapter_dir / "README.md").write_text(str(card))
    for key, folder in (("base", base_dir), ("adapter", adapter_dir)):
        api.create_repo(ids[key], exist_ok=True)
        api.upload_folder(repo_id=ids[key], folder_path=str(folder), commit_message=f"tiny {key}")
    return {**ids, "work": work, "base_dir": base_dir, "adapter_dir": adapter_dir}


def base_plus_adapter(stack):
    from rag_de.modeling import LoadQuantizationConfig, load_adapter, load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(stack["base"])   # the tiny adapter ships no tokenizer
    model = load_causal_lm(stack["base"], LoadQuantizationConfig(kind="none"), dtype="float32", device="cpu",
                           tokenizer=tokenizer)
    return load_adapter(model, stack["adapter"]).eval(), tokenizer


@pytest.fixture(scope="module")
def merged(stack):
    out = stack["work"] / "merged"
    assert main(["export", "merged", "--adapter", stack["adapter"], "--out", str(out),
                 "--push", "org/export-tiny-merged"]) == 0
    return out


def test_merged_equals_base_plus_adapter(stack, merged):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference, tokenizer = base_plus_adapter(stack)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    texts = prompts(tokenizer)
    diffs = [(a - b).abs().max().item() for a, b in zip(logits(reference, tokenizer, texts),
                                                         logits(model, tokenizer, texts))]
    assert max(diffs) <= 1e-4, diffs
    with reference.disable_adapter():
        adapter_effect = max((a - b).abs().max().item() for a, b in zip(
            logits(reference, tokenizer, texts), logits(model, tokenizer, texts)))
    assert adapter_effect > 1e-2, "the LoRA weights must change the model, or the check proves nothing"
    assert greedy(model, tokenizer, texts) == greedy(reference, tokenizer, texts)
    # the saved tokenizer renders the same prompts (chat template saved with it)
    assert prompts(AutoTokenizer.from_pretrained(merged)) == texts


def test_merged_folder_and_push(stack, merged):
    from huggingface_hub import HfApi

    files = {p.name for p in merged.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
            "export.json"} <= files
    assert not any(f.startswith(".") for f in files)
    facts = json.loads((merged / "export.json").read_text())
    assert facts["base"] == stack["base"] and facts["adapter"] == stack["adapter"]
    assert facts["merge_dtype"] == "float32" and facts["max_abs_logit_diff"] <= 1e-4
    assert facts["stop_tokens"] == ["<|im_end|>"]
    generation = json.loads((merged / "generation_config.json").read_text())
    _, tokenizer = base_plus_adapter(stack)
    assert generation["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>") == facts["eos_token_ids"][0]
    assert generation["pad_token_id"] == tokenizer.pad_token_id != generation["eos_token_id"]
    card = (merged / "README.md").read_text()
    for needle in (stack["base"], stack["adapter"], "org/spaces-rag-de", "Citation accuracy", "0.4700",
                   "max \\|logit difference\\|", SYSTEM_PROMPT):
        assert needle in card, needle
    api = HfApi()
    assert set(api.list_repo_files("org/export-tiny-merged")) >= files
    commits = [c.title for c in api.list_repo_commits("org/export-tiny-merged")]
    assert sum("rag-de export merged" in t for t in commits) == 1


@pytest.fixture(scope="module")
def gguf_exports(stack):
    out = {}
    for dtype in ("f32", "f16", "q8_0"):
        path = stack["work"] / f"gguf-{dtype}" / f"tiny-{dtype}.gguf"
        args = ["export", "gguf", "--adapter", stack["adapter"], "--out", str(path), "--dtype", dtype]
        if dtype == "f16":
            args += ["--push", "org/export-tiny-GGUF"]
        assert main(args) == 0
        out[dtype] = path
    return out


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_gguf_round_trip_answers_like_merged(merged, gguf_exports, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    reference = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    model, gguf_tokenizer = load_gguf(gguf_exports[dtype])
    texts = prompts(tokenizer)
    assert gguf_tokenizer.chat_template == tokenizer.chat_template
    assert prompts(gguf_tokenizer) == texts
    for text in texts:   # the tokenizer rebuilt from the GGUF metadata gives the same ids
        assert gguf_tokenizer(text, add_special_tokens=False)["input_ids"] == \
            tokenizer(text, add_special_tokens=False)["input_ids"]
    assert model.config.eos_token_id == tokenizer.eos_token_id
    diff = max((a - b).abs().max().item() for a, b in zip(logits(reference, tokenizer, texts),
                                                          logits(model, tokenizer, texts)))
    assert diff <= (1e-5 if dtype == "f32" else 0.1), diff
    assert greedy(model, gguf_tokenizer, texts) == greedy(reference, tokenizer, texts)


def test_gguf_metadata_and_q8_0(gguf_exports):
    from gguf import GGUFReader

    reader = GGUFReader(gguf_exports["q8_0"])
    names = {t.name: t.tensor_type.name for t in reader.tensors}
    assert names["token_embd.weight"] == "Q8_0" and names["blk.0.attn_q.weight"] == "Q8_0"
    assert names["blk.1.ffn_down.weight"] == "Q8_0" and names["output.weight"] == "Q8_0"
    assert names["blk.0.attn_norm.weight"] == "F32" and names["output_norm.weight"] == "F32"
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert field("general.architecture") == "llama" and field("tokenizer.ggml.model") == "gpt2"
    assert field("tokenizer.ggml.pre") == "gpt-2" and field("llama.block_count") == 2
    assert "<|im_start|>" in field("tokenizer.chat_template")
    tokens = field("tokenizer.ggml.tokens")
    assert tokens[field("tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    assert field("tokenizer.ggml.add_bos_token") is False
    sizes = {k: p.stat().st_size for k, p in gguf_exports.items()}
    assert sizes["q8_0"] < sizes["f16"] < sizes["f32"]
    model, tokenizer = load_gguf(gguf_exports["q8_0"])   # loads (dequantized) and runs
    assert torch.isfinite(logits(model, tokenizer, prompts(tokenizer, 1))[0]).all()


def test_modelfile_renders_the_contract_prompt(merged, gguf_exports):
    from transformers import AutoTokenizer

    text = (gguf_exports["f16"].parent / "Modelfile").read_text()
    assert "FROM ./tiny-f16.gguf" in text and 'PARAMETER stop "<|im_end|>"' in text
    assert f'SYSTEM """{SYSTEM_PROMPT}"""' in text and "PARAMETER temperature 0" in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    tokenizer = AutoTokenizer.from_pretrained(merged)
    row = rows(1)[0]
    chunks = contexts_from_column(row["contexts"])
    # what Ollama sends: the template with .System / .Prompt filled in, up to .Response
    sent = template.split("{{ .Response }}")[0].replace("{{ .System }}", SYSTEM_PROMPT)
    sent = sent.replace("{{ .Prompt }}", render_user_turn(row["question"], chunks))
    assert sent == render_prompt_text(tokenizer, row["question"], chunks)
    assert template.split("{{ .Response }}")[1].startswith("<|im_end|>")


def test_gguf_push_is_one_commit_with_card(gguf_exports):
    from huggingface_hub import HfApi

    api = HfApi()
    assert set(api.list_repo_files("org/export-tiny-GGUF")) >= {"tiny-f16.gguf", "Modelfile", "README.md"}
    commits = [c.title for c in api.list_repo_commits("org/export-tiny-GGUF")]
    assert sum("rag-de export gguf" in t for t in commits) == 1
    card = api.hf_hub_download("org/export-tiny-GGUF", "README.md")
    text = Path(card).read_text()
    assert "org/export-tiny-base" in text and "org/export-tiny-adapter" in text and "Modelfile" in text


# -- bad input: a clear error before any weight loads ------------------------------------------------------

@pytest.fixture
def no_weights(monkeypatch):
    """Any attempt to load model weights fails the test."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr("rag_de.modeling.load_causal_lm", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)


def run_error(args, capsys) -> str:
    capsys.readouterr()   # drop what building the fixtures printed
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rag-de export {args[1]}: error: "), err   # rag_de.cli.main reports it
    return err


def test_error_adapter_trained_on_another_base(stack, no_weights, tmp_path, capsys):
    err = run_error(["export", "merged", "--adapter", stack["adapter"], "--base", "org/some-other-base",
                     "--out", str(tmp_path / "m")], capsys)
    assert "trained on 'org/export-tiny-base'" in err and "--base org/export-tiny-base" in err
    assert not (tmp_path / "m").exists()


def test_error_output_exists(stack, no_weights, tmp_path, capsys):
    (tmp_path / "m").mkdir()
    err = run_error(["export", "merged", "--adapter", stack["adapter"], "--out", str(tmp_path / "m")], capsys)
    assert "the output path exists" in err and str(tmp_path / "m") in err and "new --out" in err
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "Modelfile").write_text("FROM x\n")
    err = run_error(["export", "gguf", "--adapter", stack["adapter"], "--out", str(tmp_path / "g" / "x.gguf")], capsys)
    assert "Modelfile" in err
    err = run_error(["export", "gguf", "--adapter", stack["adapter"], "--out", str(tmp_path / "x.bin")], capsys)
    assert ".gguf" in err


def test_error_unsupported_architecture(tmp_path, capsys, monkeypatch):
    from transformers import GPT2Config, GPT2LMHeadModel

    base = tmp_path / "gpt2-base"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=64)).save_pretrained(base)
    adapter = save_lora(base, tmp_path / "gpt2-adapter", str(base), targets=["c_attn"])
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("weights were loaded before the architecture was checked"))
    err = run_error(["export", "gguf", "--adapter", str(adapter), "--out", str(tmp_path / "x.gguf")], capsys)
    assert "GPT2LMHeadModel" in err and "rag-de export merged" in err
    assert not (tmp_path / "x.gguf").exists()


def test_error_missing_adapter_and_bad_push(tmp_path, capsys):
    err = run_error(["export", "merged", "--out", str(tmp_path / "m")], capsys)
    assert "--adapter" in err
    err = run_error(["export", "merged", "--adapter", "x", "--out", str(tmp_path / "m"), "--push", "no-namespace"],
                    capsys)
    assert "--push" in err


def test_quickstart_export_stage(stack, tmp_path, capsys):
    """The quickstart's last stage: merged + GGUF of the adapter on the Hub; a rerun reuses them."""
    import os

    from rag_de.quickstart import Pipeline, QuickstartConfig

    config = QuickstartConfig(workdir=str(tmp_path), adapter_name="export-tiny-adapter", use_running_hub=True,
                            export_gguf="q8_0")
    pipeline = Pipeline(config)
    pipeline.env.update({"HF_ENDPOINT": os.environ["HF_ENDPOINT"], "HF_TOKEN": os.environ["HF_TOKEN"]})
    pipeline.export()
    api = pipeline.hub_api()
    assert "model.safetensors" in api.list_repo_files("org/export-tiny-adapter-merged")
    assert {"export-tiny-adapter-q8_0.gguf", "Modelfile"} <= set(api.list_repo_files("org/export-tiny-adapter-GGUF"))
    assert (tmp_path / "export" / "merged" / "export.json").exists()
    capsys.readouterr()
    pipeline.export()
    assert "already exported" in capsys.readouterr().out
