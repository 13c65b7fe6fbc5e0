"""End to end on a tiny random Llama: `rag-de evaluate` -> results, plots, error analysis -> model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dataset_builder.contract import REFUSAL, SYSTEM_PROMPT, Chunk, chat_messages, format_answer, render_user_turn
from rag_de.cli import main as rag_de

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]

MODULES = [
    Chunk(id="db", title="Datenbanken", text="Das Modul Datenbanken umfasst 5 ECTS und wird im zweiten Semester angeboten.",
          metadata={"module_code": "DB-101", "ects": 5}),
    Chunk(id="ml", title="Maschinelles Lernen", text="Maschinelles Lernen vermittelt Regression und Klassifikation mit Python.",
          metadata={"module_code": "ML-201", "ects": 6}),
    Chunk(id="st", title="Statistik", text="Statistik behandelt Wahrscheinlichkeiten, Tests und Konfidenzintervalle.",
          metadata={"module_code": "ST-110", "ects": 4}),
]
QUESTIONS = [  # (id, question, chunk ids in prompt order, gold chunk id or None, gold span, answer sentence)
    ("q1", "Wie viele ECTS hat das Modul Datenbanken?", ["ml", "db"], "db", "5 ECTS", "Das Modul Datenbanken umfasst 5 ECTS."),
    ("q2", "Was vermittelt Maschinelles Lernen?", ["ml", "st"], "ml", "Regression und Klassifikation",
     "Maschinelles Lernen vermittelt Regression und Klassifikation."),
    ("q3", "Was behandelt Statistik?", ["db", "st"], "st", "Wahrscheinlichkeiten", "Statistik behandelt Wahrscheinlichkeiten."),
    ("q4", "In welchem Semester wird Datenbanken angeboten?", ["db"], "db", "zweiten Semester",
     "Datenbanken wird im zweiten Semester angeboten."),
    ("q5", "Wer leitet das Modul Kunstgeschichte?", ["db", "ml"], None, "", None),
    ("q6", "Wie teuer ist die Mensa?", ["st"], None, "", None),
]


def dataset_rows() -> list[dict]:
    by_id = {c.id: c for c in MODULES}
    rows = []
    for qid, question, chunk_ids, gold, span, sentence in QUESTIONS:
        chunks = [by_id[c] for c in chunk_ids]
        answer = REFUSAL if gold is None else format_answer(sentence, chunk_ids.index(gold) + 1, by_id[gold].title)
        rows.append({
            "id": qid, "question": question, "contexts": [c.to_record() for c in chunks], "answer": answer,
            "gold_chunk_id": gold, "answerable": gold is not None, "gold_span": span, "origin": "test",
            "source_doc": "modulhandbuch", "messages": chat_messages(question, chunks, answer),
        })
    return rows


def write_split(folder: Path, split: str, rows: list[dict]) -> None:
    import datasets

    folder.mkdir(parents=True, exist_ok=True)
    if rows:
        datasets.Dataset.from_list(rows).to_parquet(str(folder / f"{split}.parquet"))
    else:
        datasets.Dataset.from_list(dataset_rows()).select([]).to_parquet(str(folder / f"{split}.parquet"))


def build_tiny_model(folder: Path) -> Path:
    """A 2-layer random Llama with a word-level tokenizer that knows every word of the test data."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [SYSTEM_PROMPT, REFUSAL, "system user assistant Quelle Titel Modulkürzel ECTS"]
    for row in dataset_rows():
        corpus += [render_user_turn(row["question"], row["contexts"]), row["answer"]]
    pre = pre_tokenizers.Whitespace()
    words = sorted({w for text in corpus for w, _ in pre.pre_tokenize_str(text)} | {str(i) for i in range(10)})
    vocab = {tok: i for i, tok in enumerate(SPECIAL + [w for w in words if w not in SPECIAL])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                        eos_token="<|im_end|>", additional_special_tokens=SPECIAL[2:])
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         pad_token_id=vocab["<pad>"], eos_token_id=vocab["<|im_end|>"], bos_token_id=None)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_adapter(base_dir: Path, folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(folder)
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base_dir)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-eval")
    base = build_tiny_model(root / "base")
    adapter = build_adapter(base, root / "run" / "adapter")
    write_split(root / "data", "test", dataset_rows())
    return {"root": root, "base": base, "adapter": adapter, "data": root / "data", "run": root / "run"}


def evaluate_args(tiny, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--base", str(tiny["base"]), "--adapter", str(tiny["adapter"]), "--dataset",
            str(tiny["data"]), "--split", "test", "--out", str(out), "--batch-size", "4",
            "--max-new-tokens", "8", "--quantization", "none", *extra]


def write_run_files(run: Path) -> None:
    """What `rag-de train` leaves in a run folder (config, summary, trainer state)."""
    from rag_de.config import to_dict
    from training_space.config import TrainConfig

    config = to_dict(TrainConfig())
    config["model"]["name"] = "org/tiny-llama"
    config["training"]["output_dir"] = str(run)          # a local path: must not reach the card
    (run / "train_config.yaml").write_text(yaml.safe_dump(config))
    (run / "train_summary.json").write_text(json.dumps({
        "base_model": "org/tiny-llama", "dataset": "org/spaces-rag-de", "dataset_revision": "abc123",
        "hub_model_id": "org/tiny-rag-adapter", "hardware": "CPU (2 cores)", "quantization": "none",
        "train_runtime_s": 75.0, "train_tokens": 4096, "tokens_per_s": 54.6, "peak_memory_gb": 0.4,
        "global_step": 4, "epochs": 1.0, "train_loss": 7.1, "eval_loss": 7.3}))
    (run / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"step": 1, "loss": 7.5}, {"step": 2, "loss": 7.2}, {"step": 2, "eval_loss": 7.4},
        {"step": 3, "loss": 7.0}, {"step": 4, "loss": 6.9}, {"step": 4, "eval_loss": 7.3}]}))


def test_evaluate_writes_results_plots_errors_and_card(tiny, capsys):
    from huggingface_hub import EvalResult, ModelCard

    from model_cards.model_card import render_model_card
    from model_cards.safety import check_publishable

    run, out = tiny["run"], tiny["run"] / "eval"
    write_run_files(run)
    assert rag_de(evaluate_args(tiny, out)) == 0

    results = json.loads((out / "results.json").read_text())
    assert results["counts"] == {"examples": 6, "answerable": 4, "unanswerable": 2}
    expected = {"rouge_l", "bleu", "token_f1", "gold_span_recall", "citation_accuracy", "refusal_precision",
                "refusal_recall", "refusal_f1", "needless_refusal_rate", "faithfulness", "eval_loss", "perplexity",
                "citation_accuracy_multi", "answered_f1", "f1_gr", "answered_correctness", "f1_ac"}
    assert expected <= set(results["metrics"])
    for row in results["metrics"].values():
        assert set(row) >= {"base", "adapter", "delta"}
    # The trivial baselines on the same six rows (see QUESTIONS): [1] is gold for q2 and q4 only; BM25 ranks
    # the gold chunk first everywhere and its threshold (tuned on test: the fixture has no validation split)
    # falls between q5's stray word and the answerable questions.
    baselines = results["baselines"]
    assert set(baselines) == {"always_cite_1", "always_refuse", "bm25"}
    assert baselines["always_cite_1"]["citation_accuracy"] == 0.5
    assert baselines["always_cite_1"]["citation_accuracy_multi"] == pytest.approx(1 / 3)
    assert baselines["always_cite_1"]["needless_refusal_rate"] == 0.0 and baselines["always_cite_1"]["refusal_f1"] == 0.0
    assert baselines["always_refuse"]["refusal_f1"] == pytest.approx(0.5)       # P 2/6, R 1
    assert baselines["always_refuse"]["needless_refusal_rate"] == 1.0
    bm25 = baselines["bm25"]
    assert bm25["citation_accuracy_multi"] == 1.0 and bm25["f1_gr"] == 1.0 and bm25["refusal_auc"] == 1.0
    assert bm25["top_score_cut"] > 0 and bm25["threshold_split"] == "test" and "no usable 'validation'" in bm25["threshold_note"]
    assert str(tiny["root"]) not in json.dumps(results)
    # A random model is far from the gold answers; its loss is about ln(vocab) and differs with the adapter.
    loss = results["metrics"]["eval_loss"]
    assert loss["base"] > 1.0 and loss["adapter"] != loss["base"]
    assert results["cache"]["base"]["generated"] == 6 and results["cache"]["adapter"]["generated"] == 6
    assert results["config"]["base"] == "local:base" and "/" not in results["config"]["adapter"]

    predictions = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [q[0] for q in QUESTIONS]
    assert all(isinstance(p[v]["prediction"], str) for p in predictions for v in ("base", "adapter"))
    for name in ("metrics.png", "training_curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    analysis = (out / "error_analysis.md").read_text()
    for heading in ("Wrong citation", "Missed refusal", "Needless refusal", "Hallucinated content"):
        assert heading in analysis
    # The random model refuses nothing, so both unanswerable questions are missed refusals.
    assert "| Missed refusal (unanswerable, but the model answered) | 2 | 2 |" in analysis
    assert "| Citation accuracy (2+ chunks) | " in analysis and "Always [1] (never refuses)" in analysis

    # The card written from this run: parses, and its model-index equals results.json.
    assert rag_de(["card", "model", "--run-dir", str(run)]) == 0
    text = (run / "README.md").read_text()
    assert text == render_model_card(run)
    card = ModelCard(text)
    assert card.data.base_model == "org/tiny-llama" and card.data.library_name == "peft"
    assert card.data.language == "de" and card.data.pipeline_tag == "text-generation"
    evals = card.data.eval_results
    assert all(isinstance(e, EvalResult) for e in evals)
    from_card = {e.metric_type: e.metric_value for e in evals}
    from_results = {k: v["adapter"] for k, v in results["metrics"].items() if v["adapter"] is not None}
    assert from_card == from_results
    assert {e.dataset_split for e in evals} == {"test"} and {e.task_type for e in evals} == {"text-generation"}
    assert str(tiny["root"]) not in text and "/tmp" not in text
    assert check_publishable(text) == text
    assert "from dataset_builder.contract import" in text and "Datenbanken" in text
    assert "| `lora.r` | `12` |" in text and "output_dir" not in text


def test_rerun_resumes_from_cache_without_generating(tiny):
    out = tiny["root"] / "resume"
    assert rag_de(evaluate_args(tiny, out, "--limit", "3")) == 0
    first = json.loads((out / "results.json").read_text())
    assert first["cache"]["adapter"]["generated"] == 3
    # Interrupted-append debris: a torn last line is dropped, not parsed as a record.
    with open(out / "generations.jsonl", "a") as fh:
        fh.write('{"key": "torn')
    assert rag_de(evaluate_args(tiny, out, "--limit", "3")) == 0
    second = json.loads((out / "results.json").read_text())
    # 3 examples x (generation, decision, evidence, loss), all from the cache
    assert second["cache"]["base"] == {"cache_hits": 12, "generated": 0, "generation_seconds": 0.0,
                                       "decision_seconds": 0.0, "evidence_seconds": 0.0, "loss_seconds": 0.0}
    assert second["cache"]["adapter"]["generated"] == 0
    assert second["metrics"] == first["metrics"]
    # Six more examples than cached: only the missing three are generated.
    assert rag_de(evaluate_args(tiny, out)) == 0
    third = json.loads((out / "results.json").read_text())
    assert third["cache"]["adapter"]["generated"] == 3 and third["cache"]["base"]["generated"] == 3


def test_baselines_tune_on_validation_and_need_no_model(tiny, tmp_path, monkeypatch):
    """Baselines are recomputed from cached generations, with the threshold from the validation split."""
    import shutil

    from evaluation.baselines import tuned_bm25
    from rag_de import modeling

    data = tmp_path / "data"
    shutil.copytree(tiny["data"], data)
    args = evaluate_args(tiny, tmp_path / "out", "--limit", "4")
    args[args.index("--dataset") + 1] = str(data)
    assert rag_de(args) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["baselines"]["bm25"]["threshold_split"] == "test"
    validation = [r for r in dataset_rows() if r["id"] in ("q1", "q6")]
    write_split(data, "validation", validation)

    def refuse(*a, **k):
        raise AssertionError("baselines must not load a model")

    monkeypatch.setattr(modeling, "load_causal_lm", refuse)
    assert rag_de(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["cache"]["base"]["generated"] == 0 and results["cache"]["adapter"]["generated"] == 0
    bm25 = results["baselines"]["bm25"]
    assert bm25["threshold_split"] == "validation" and bm25["threshold_note"] is None and bm25["threshold_rows"] == 2
    assert bm25["threshold"] == pytest.approx(tuned_bm25(dataset_rows()[:4], validation).threshold)


def test_evaluate_nf4_on_tiny_model(tiny):
    out = tiny["root"] / "nf4"
    args = evaluate_args(tiny, out, "--limit", "2")
    args[args.index("--quantization") + 1] = "nf4"
    assert rag_de(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["quantization"] == "nf4" and results["counts"]["examples"] == 2
    assert results["metrics"]["eval_loss"]["adapter"] > 0


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if anything tries to load a model."""
    import rag_de.modeling

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded although the input is invalid")

    monkeypatch.setattr(rag_de.modeling, "load_causal_lm", refuse)


def test_adapter_for_another_base_fails_before_generation(tiny, tmp_path, capsys, no_model_load):
    args = evaluate_args(tiny, tmp_path / "out")
    args[args.index("--base") + 1] = "org/some-other-model"
    assert rag_de(args) == 2
    err = capsys.readouterr().err
    assert "org/some-other-model" in err and str(tiny["base"]) in err and "--base" in err
    assert not (tmp_path / "out" / "generations.jsonl").exists()


def test_dataset_without_expected_columns_fails_before_generation(tiny, tmp_path, capsys, no_model_load):
    rows = [{k: v for k, v in r.items() if k not in ("gold_chunk_id", "gold_span")} for r in dataset_rows()]
    write_split(tmp_path / "bad", "test", rows)
    args = evaluate_args(tiny, tmp_path / "out")
    args[args.index("--dataset") + 1] = str(tmp_path / "bad")
    assert rag_de(args) == 2
    err = capsys.readouterr().err
    assert "missing column(s) ['gold_chunk_id', 'gold_span']" in err and "test.parquet" in err
    assert not (tmp_path / "out" / "generations.jsonl").exists()


def test_empty_split_fails_before_generation(tiny, tmp_path, capsys, no_model_load):
    write_split(tmp_path / "empty", "test", [])
    args = evaluate_args(tiny, tmp_path / "out")
    args[args.index("--dataset") + 1] = str(tmp_path / "empty")
    assert rag_de(args) == 2
    assert "has no rows" in capsys.readouterr().err
    assert not (tmp_path / "out" / "generations.jsonl").exists()


def test_missing_split_names_the_splits_found(tiny, tmp_path, capsys, no_model_load):
    args = evaluate_args(tiny, tmp_path / "out")
    args[args.index("--split") + 1] = "validation"
    assert rag_de(args) == 2
    assert "no parquet file for split 'validation'" in capsys.readouterr().err


def test_evaluate_reads_dataset_and_adapter_from_the_hub(tiny, tmp_path, local_hub):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("org/eval-tiny-data", repo_type="dataset", exist_ok=True)
    api.upload_file(path_or_fileobj=str(tiny["data"] / "test.parquet"), repo_type="dataset",
                    path_in_repo="data/test-00000-of-00001.parquet", repo_id="org/eval-tiny-data")
    api.create_repo("org/eval-tiny-adapter", exist_ok=True)
    api.upload_folder(folder_path=str(tiny["adapter"]), repo_id="org/eval-tiny-adapter")
    args = ["evaluate", "--base", str(tiny["base"]), "--adapter", "org/eval-tiny-adapter", "--dataset",
            "org/eval-tiny-data", "--split", "test", "--out", str(tmp_path / "out"), "--limit", "2",
            "--max-new-tokens", "4", "--quantization", "none"]
    assert rag_de(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["config"]["dataset"] == "org/eval-tiny-data" and results["config"]["adapter"] == "org/eval-tiny-adapter"
    assert results["counts"]["examples"] == 2
    # Same weights as the local adapter folder: the same answers as a local run.
    local = tmp_path / "local"
    assert rag_de(evaluate_args(tiny, local, "--limit", "2", "--max-new-tokens", "4")) == 0
    hub_preds = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    local_preds = (local / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(l)["adapter"]["prediction"] for l in hub_preds] == \
           [json.loads(l)["adapter"]["prediction"] for l in local_preds]


def test_batched_answer_loss_equals_unpadded_full_logits_loss(tiny):
    """Left padding, explicit position ids and logits_to_keep must not change the answer NLL."""
    import torch
    import torch.nn.functional as F

    from dataset_builder.contract import contexts_from_column, render_prompt_text
    from evaluation.inference import answer_nll
    from rag_de.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(str(tiny["base"]))
    model = load_causal_lm(str(tiny["base"]), device="cpu", tokenizer=tokenizer).eval()
    rows = dataset_rows()[:3]
    prompts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in rows]
    answers = [r["answer"] for r in rows]
    batched = answer_nll(model, tokenizer, prompts, answers)
    for (nll, count), prompt, answer in zip(batched, prompts, answers):
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = torch.tensor([p_ids + a_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(p_ids) - 1:-1]
        expected = F.cross_entropy(logits, torch.tensor(a_ids), reduction="sum").item()
        assert count == len(a_ids)
        assert nll == pytest.approx(expected, rel=1e-4)


def test_left_padded_batch_generates_what_each_prompt_generates_alone(tiny):
    from dataset_builder.contract import contexts_from_column, render_prompt_text
    from answering.generate import generate_batch
    from rag_de.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(str(tiny["base"]))
    model = load_causal_lm(str(tiny["base"]), device="cpu", tokenizer=tokenizer).eval()
    prompts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"]))
               for r in dataset_rows()[:3]]
    assert len({len(tokenizer(p)["input_ids"]) for p in prompts}) == 3      # really padded
    batched = generate_batch(model, tokenizer, prompts, max_new_tokens=6)
    assert batched == [generate_batch(model, tokenizer, [p], max_new_tokens=6)[0] for p in prompts]


@pytest.mark.parametrize("mode", ["lead", "evidence", "fused"])
def test_decided_answers_follow_the_shipped_threshold(tiny, tmp_path, mode):
    """An adapter shipping rag_de_decision.json gets a decided pipeline in results.json: the threshold's
    reading decides refusals and citations (within the prompt's chunks), answers are contract-form."""
    import shutil

    from dataset_builder.contract import REFUSAL, parse_answer
    from answering.decision import DecisionThreshold, Fusion

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny["adapter"], adapter)
    fusion = Fusion(0.5, [0.0, -1.0], [1.0, 1.0]) if mode == "fused" else None
    DecisionThreshold(refusal_threshold=float("inf"), tuned_on="test", mode=mode, fusion=fusion,
                      evidence_scale=None if mode == "lead" else "per_question_token").save(adapter)
    args = evaluate_args(tiny, tmp_path / "out", "--limit", "4", "--readings", "lead")
    args[args.index("--adapter") + 1] = str(adapter)
    assert rag_de(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    name = "adapter" if mode == "lead" else f"adapter_{mode}"
    # --readings lead: the base gets only the lead reading; the adapter also the one its threshold needs
    expected = {"base", "adapter", name} | ({"adapter_evidence"} if mode == "fused" else set())
    assert set(results["decision"]) == expected
    assert results["decision"][name]["refusal_threshold"] == float("inf")
    assert results["decision_threshold"]["mode"] == mode
    assert results["decided"]["needless_refusal_rate"] == 0.0     # an infinite threshold never refuses
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    for row in rows:
        decided = row["adapter_decided"]["prediction"]
        assert decided != REFUSAL and decided.startswith("Laut Abschnitt [")
        assert 1 <= parse_answer(decided).cited[0] <= 3


def test_threshold_retuned_on_the_validation_split(tiny, tmp_path):
    """--threshold validation: the decided pipeline refuses by a threshold tuned on this dataset's validation
    split (as the BM25 rule is), not the shipped one; results.json says where it came from."""
    import shutil

    from answering.decision import DecisionThreshold, Fusion

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny["adapter"], adapter)
    DecisionThreshold(refusal_threshold=float("inf"), tuned_on="elsewhere", mode="fused",
                      fusion=Fusion(0.5, [0.0, -1.0], [1.0, 1.0]), evidence_scale="per_question_token").save(adapter)
    data = tmp_path / "data"
    shutil.copytree(tiny["data"], data)
    write_split(data, "validation", dataset_rows()[:4])
    args = evaluate_args(tiny, tmp_path / "out", "--limit", "3", "--readings", "evidence", "--threshold", "validation")
    args[args.index("--adapter") + 1] = str(adapter)
    args[args.index("--dataset") + 1] = str(data)
    assert rag_de(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    retuned = results["decision_threshold"]
    assert retuned["mode"] == "fused" and retuned["refusal_threshold"] != float("inf")
    assert "re-tuned at evaluation" in retuned["tuned_on"] and "elsewhere" in retuned["tuned_on"]
    assert retuned["fusion"]["mean"] != [0.0, -1.0]        # the standardization is refitted there too
    assert results["decision"]["adapter_fused"]["refusal_threshold"] == retuned["refusal_threshold"]


def test_evaluate_without_answer_loss(tiny, tmp_path):
    """--compute-loss false (the quickstart's default): no loss pass, no eval_loss row, reports still written."""
    out = tmp_path / "no-loss"
    assert rag_de(evaluate_args(tiny, out, "--limit", "2", "--compute-loss", "false")) == 0
    results = json.loads((out / "results.json").read_text())
    assert "eval_loss" not in results["metrics"] and results["cache"]["adapter"]["loss_seconds"] == 0.0
    assert (out / "error_analysis.md").exists() and (out / "metrics.png").exists()


@pytest.mark.parametrize("answer_mode", ["generated", "free"])
def test_decided_pipeline_answers_in_the_shipped_answer_mode(tiny, tmp_path, answer_mode):
    """The shipped answer mode is the `decided` pipeline: generated = the adapter's own text after the forced
    lead `Laut Abschnitt [n] (Titel):`; free = its free generation. Both decided modes are scored beside it."""
    import shutil

    from answering.answer import forced_lead
    from answering.decision import DecisionThreshold
    from dataset_builder.contract import contexts_from_column, parse_answer

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny["adapter"], adapter)
    DecisionThreshold(refusal_threshold=float("inf"), tuned_on="test", mode="lead", answer_mode=answer_mode,
                      answer_modes={answer_mode: {"score": 0.9}}).save(adapter)
    args = evaluate_args(tiny, tmp_path / "out", "--limit", "3", "--readings", "lead")
    args[args.index("--adapter") + 1] = str(adapter)
    assert rag_de(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    modes = results["answer_modes"]
    assert modes["shipped"] == answer_mode and modes["validation"] == {answer_mode: {"score": 0.9}}
    assert set(modes["test"]) == {"extracted", "generated", answer_mode}
    assert results["decided"] == {k: v for k, v in modes["test"][answer_mode].items()
                                  if k not in ("answer_quality", "score")}
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    rows = dataset_rows()[:3]
    for record, row in zip(predictions, rows):
        decided = record["adapter_decided"]["prediction"]
        if answer_mode == "free":
            assert decided == record["adapter"]["prediction"]
        else:
            number = parse_answer(decided).cited[0]
            assert decided.startswith(forced_lead(number, contexts_from_column(row["contexts"])[number - 1]))
            assert decided == record["adapter_generated"]["prediction"]
            assert record["adapter_extracted"]["prediction"] != decided
