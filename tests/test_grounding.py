"""Grounding levers: decision tokens, their loss weights, counterfactual rows, the refusal threshold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dataset_builder.contract import REFUSAL, contexts_from_column, parse_answer
from answering.decision import Decision, DecisionThreshold, DecisionTokens, Fusion
from dataset_builder.schema import question_key
from evaluation.decisions import decision_metrics
from evaluation.thresholds import tune_threshold
from helpers import REPO_ROOT, build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_decision_tokens_tell_answer_from_refusal(tokenizer):
    tokens = DecisionTokens.from_tokenizer(tokenizer)
    assert tokens.answer_id != tokens.refusal_id
    assert tokenizer.decode(list(tokens.lead)).strip() == "Laut Abschnitt ["
    assert [tokenizer.decode([t]) for t in tokens.numbers] == [str(n) for n in range(1, 10)]


def test_decision_weights_hit_first_word_and_chunk_number(tokenizer):
    import torch

    from training_space.objective import DecisionPositions, decision_weights

    positions = DecisionPositions.from_tokenizer(tokenizer)
    prompt = tokenizer("Frage: Wie viele ECTS?", add_special_tokens=False)["input_ids"]
    answer = tokenizer("Laut Abschnitt [2] (DS-1 X): Es sind 5 ECTS.<|im_end|>", add_special_tokens=False)["input_ids"]
    refusal = tokenizer(REFUSAL + "<|im_end|>", add_special_tokens=False)["input_ids"]
    width = len(prompt) + max(len(answer), len(refusal))
    labels = torch.full((2, width), -100)
    labels[0, len(prompt):len(prompt) + len(answer)] = torch.tensor(answer)
    labels[1, len(prompt):len(prompt) + len(refusal)] = torch.tensor(refusal)
    weights = decision_weights(labels, positions, 5.0)
    heavy = [[tokenizer.decode([int(labels[r, j])]) for j in range(width) if weights[r, j] == 5.0] for r in (0, 1)]
    assert heavy[0] == [tokenizer.decode([answer[0]]), "2"]         # the first word and the cited number
    assert heavy[1] == [tokenizer.decode([refusal[0]])]               # a refusal has one decision
    assert float(weights[labels == -100].abs().sum()) == 0.0         # the prompt stays masked
    assert set(weights[0][(labels[0] != -100)].tolist()) == {1.0, 5.0}  # the ECTS "5" is not a decision


def test_threshold_tuning_and_decision_metrics_on_known_cases():
    # scores: two refusal rows (unanswerable) high, one answerable row in between
    scores = [3.0, 2.0, 0.5, -1.0, -2.0]
    answerable = [False, False, True, True, True]
    threshold, value = tune_threshold(scores, answerable)
    assert 0.5 < threshold < 2.0 and value == pytest.approx(1.0)
    rows = [{"answerable": a, "contexts": [{"id": "a"}, {"id": "b"}], "gold_chunk_id": "b" if a else None}
            for a in answerable]
    decisions = [Decision(s, [-0.1, -2.3] if i % 2 else [-2.3, -0.1]) for i, s in enumerate(scores)]
    metrics = decision_metrics(decisions, rows, threshold)
    assert metrics["refusal_auc"] == 1.0 and metrics["refusal_f1"] == 1.0 and metrics["needless_refusal_rate"] == 0
    # answerable rows 2, 3, 4 cite 2, 1, 2 (odd index -> chunk 1); gold is chunk 2 -> 2 of 3
    assert metrics["constrained_citation_accuracy_multi"] == pytest.approx(2 / 3)
    assert metrics["f1_gr"] == 1.0


def test_counterfactual_build_keeps_every_contract_invariant(tmp_path):
    """`rag-de build --counterfactuals moved,removed` on the shipped sample data: every row still obeys the
    contract, and each variant differs from its question's own row only where it should."""
    import pandas as pd

    out = tmp_path / "cf"
    cmd = [sys.executable, "-m", "rag_de", "build", "--config", "dataset_builder/configs/cpu-quickstart.yaml",
           "--counterfactuals", "moved,removed", "--out", str(out)]
    assert subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True).returncode == 0
    train = pd.read_parquet(out / "train.parquet").to_dict("records")
    assert len({r["id"] for r in train}) == len(train)
    by_question: dict[str, dict[str, dict]] = {}
    for row in train:
        variant = row["id"].split("#cf-")[1] if "#cf-" in row["id"] else ""
        by_question.setdefault(question_key(row["id"]), {})[variant] = row
        chunks = contexts_from_column(row["contexts"])
        parsed = parse_answer(row["answer"], chunks)
        assert row["messages"][-1]["content"] == row["answer"]
        if row["answerable"]:
            gold = [c.id for c in chunks].index(row["gold_chunk_id"]) + 1
            assert parsed.cited == [gold] and not parsed.is_refusal
            assert row["gold_span"].casefold() in chunks[gold - 1].text.casefold()
        else:
            assert row["answer"] == REFUSAL and not isinstance(row["gold_chunk_id"], str)
    moved = removed = 0
    for variants in by_question.values():
        base = variants[""]
        assert set(variants) <= {"", "moved", "removed"}
        for name, row in variants.items():
            assert row["question"] == base["question"] and row["source_doc"] == base["source_doc"]
        if "moved" in variants:
            moved += 1
            m = variants["moved"]
            assert base["answerable"] and m["gold_chunk_id"] == base["gold_chunk_id"]
            ids = [c["id"] for c in m["contexts"]]
            assert ids.index(m["gold_chunk_id"]) != [c["id"] for c in base["contexts"]].index(base["gold_chunk_id"])
        if "removed" in variants:
            removed += 1
            r = variants["removed"]
            assert not r["answerable"] and base["gold_chunk_id"] not in [c["id"] for c in r["contexts"]]
            span = base["gold_span"].casefold()
            assert all(span not in c["text"].casefold() for c in r["contexts"])
            base_others = [c["id"] for c in base["contexts"] if c["id"] != base["gold_chunk_id"]]
            assert base_others == [] or [c["id"] for c in r["contexts"]] == base_others
    answerable = sum(v[""]["answerable"] for v in by_question.values())
    assert moved == removed == answerable > 100
    for split in ("validation", "test"):   # evaluation splits keep one row per question
        ids = pd.read_parquet(out / f"{split}.parquet")["id"].tolist()
        assert not any("#cf-" in i for i in ids)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["splits"]["train"]["counterfactual_moved"] == moved


def test_threshold_file_on_the_hub_or_absent(local_hub, tmp_path):
    """An adapter repo without the file means free generation (None), not an error; with it, the same values."""
    import uuid

    from huggingface_hub import HfApi

    from answering.decision import DECISION_FILE, load_threshold

    repo = f"org/adapter-{uuid.uuid4().hex[:6]}"
    api = HfApi()
    api.create_repo(repo)
    (tmp_path / "adapter_config.json").write_text("{}")
    api.upload_file(path_or_fileobj=str(tmp_path / "adapter_config.json"), path_in_repo="adapter_config.json",
                    repo_id=repo)
    assert load_threshold(repo) is None
    shipped = DecisionThreshold(refusal_threshold=-1.25, tuned_on="org/data [validation], 38 rows", mode="evidence",
                                objective_value=0.75, refusal_auc=0.8, citation_accuracy_multi=0.9,
                                evidence_scale="per_question_token")
    path = shipped.save(tmp_path)
    assert path.name == DECISION_FILE
    api.upload_file(path_or_fileobj=str(path), path_in_repo=DECISION_FILE, repo_id=repo)
    assert load_threshold(repo) == shipped
    # the fused reading ships its standardization too, and comes back as a Fusion
    fused = DecisionThreshold(refusal_threshold=0.25, tuned_on="org/data [validation], 38 rows", mode="fused",
                              fusion=Fusion(0.5, [-0.9, -6.0], [0.3, 2.0]), evidence_scale="per_question_token")
    api.upload_file(path_or_fileobj=str(fused.save(tmp_path)), path_in_repo=DECISION_FILE, repo_id=repo)
    assert load_threshold(repo) == fused and isinstance(load_threshold(repo).fusion, Fusion)


def test_fusion_standardizes_both_scores_and_keeps_the_models_citation():
    # evidence refusal scores -1, -3 (mean -2, sd 1); BM25 tops 4, 8 -> minus: -4, -8 (mean -6, sd 2)
    fusion = Fusion.fit([-1.0, -3.0], [4.0, 8.0], model_weight=0.5)
    assert fusion.mean == [-2.0, -6.0] and fusion.std == [1.0, 2.0]
    assert fusion.score(-1.0, 4.0) == pytest.approx(1.0)          # both one sd towards refusing
    assert fusion.score(-2.0, 2.0) == pytest.approx(0.5 * 0 + 0.5 * 2.0)
    assert Fusion.fit([-1.0, -3.0], [4.0, 8.0], model_weight=1.0).score(-3.0, 100.0) == pytest.approx(-1.0)
    fused = fusion.fuse(Decision(-1.0, [0.2, 3.0]), [4.0, 1.0])
    assert fused.refusal_score == pytest.approx(1.0) and fused.citation == 2   # BM25's top, the model's chunk
    with pytest.raises(ValueError, match="fusion"):
        DecisionThreshold.from_dict({"refusal_threshold": 0.1, "tuned_on": "x", "mode": "fused",
                                     "evidence_scale": "per_question_token"})
    with pytest.raises(ValueError, match="unknown decision mode"):
        DecisionThreshold.from_dict({"refusal_threshold": 0.1, "tuned_on": "x", "mode": "magic"})
    # an evidence threshold from before the per-token scale is refused, not silently misread
    with pytest.raises(ValueError, match="re-tune"):
        DecisionThreshold.from_dict({"refusal_threshold": -32.1, "tuned_on": "x", "mode": "evidence"})


def test_fused_tuning_mends_a_row_the_model_misranks():
    """The model's evidence ranks answerable row 1 among the unanswerable ones (AUC 0.75); its chunk shares
    the question's words, so the average with the standardized BM25 score ranks every row right (AUC 1);
    tune_reading fits the standardization on the same rows and ships it in the threshold."""
    from evaluation.decisions import decision_metrics, tune_reading

    texts = ["Der Kurs Statistik hat fünf ECTS.", "Die Mensa öffnet um acht Uhr.", "Der Hörsaal liegt im Keller."]
    questions = ["Wie viele ECTS hat Statistik?", "Wann öffnet die Mensa?", "Wie viele ECTS hat Chemie?",
                 "Wo ist das Labor?"]
    rows = [{"id": str(i), "question": q, "answerable": i < 2, "gold_chunk_id": f"c{i}" if i < 2 else None,
             "contexts": [{"id": f"c{i % 3}", "title": "", "text": texts[i % 3], "source": "", "metadata": {}}]}
            for i, q in enumerate(questions)]
    # evidence: answerable rows -0.2 and 0.5 (row 1 looks unexplained), unanswerable 0.3 and 0.6
    evidence = [Decision(s, [1.0]) for s in (-0.2, 0.5, 0.3, 0.6)]
    assert decision_metrics(evidence, rows, None)["refusal_auc"] == 0.75
    tuned = tune_reading(evidence, rows, "fused", "hand-made", fusion_weight=0.5)
    assert tuned.mode == "fused" and tuned.fusion is not None
    from evaluation.decisions import apply_reading

    fused = apply_reading(evidence, rows, tuned)
    metrics = decision_metrics(fused, rows, tuned.refusal_threshold)
    assert metrics["refusal_auc"] == 1.0 and metrics["f1_gr"] == 1.0 and tuned.objective_value == 1.0


def test_batched_evidence_matches_one_full_forward_per_request():
    """`question_logprobs` runs requests in left-padded batches sorted by length; every request must get what
    a plain forward over its own prefix + question gives, also for a LoRA-wrapped model and a 1-token
    question, and in the order asked."""
    import torch
    from peft import LoraConfig, get_peft_model

    from answering.decision import _question_prefix, evidence_decisions, question_logprobs
    from helpers import build_catalog_tokenizer, build_tiny_model, catalog_chunks

    tok = build_catalog_tokenizer()
    chunks = catalog_chunks()[:3]
    torch.manual_seed(0)
    model = get_peft_model(build_tiny_model(tok), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                             init_lora_weights=False)).eval()
    questions = ["Wie viele ECTS hat das Modul?", "Wer prüft?", "?"]
    requests = [(q, cs) for cs in ([], [chunks[0]], [chunks[1], chunks[2]]) for q in questions][::-1]

    def plain(question, cs):
        prefix = tok(_question_prefix(tok, cs), add_special_tokens=False)["input_ids"]
        target = tok(question, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prefix + target])).logits[0, len(prefix) - 1:-1]
        return float(torch.log_softmax(logits, -1)[torch.arange(len(target)), torch.tensor(target)].sum())

    expected = [plain(q, cs) for q, cs in requests]
    assert len(set(round(e, 3) for e in expected)) == len(expected)   # the requests differ: a mix-up would show
    assert question_logprobs(model, tok, requests) == pytest.approx(expected, abs=1e-4)
    assert question_logprobs(model, tok, requests, batch_tokens=1) == pytest.approx(expected, abs=1e-4)   # unbatched
    # evidence decisions: gains = with chunk - without, refusal = -best gain per question token
    decision = evidence_decisions(model, tok, [(questions[0], chunks[:2])])[0]
    null = plain(questions[0], [])
    gains = [plain(questions[0], [c]) - null for c in chunks[:2]]
    assert decision.citation_scores == pytest.approx(gains, abs=1e-4)
    n = len(tok(questions[0], add_special_tokens=False)["input_ids"])
    assert decision.refusal_score == pytest.approx(-max(gains) / n, abs=1e-4)
