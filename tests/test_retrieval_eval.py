"""Retrieval: RRF fusion, the dense encoder's embedding cache, the BM25 fallback, bad queries, recall@k / MRR.

The dense encoder is a tiny random BERT built here (word-level tokenizer over the test words): its
rankings mean nothing, but loading, pooling, caching and fusion run exactly as with a real encoder.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from dataset_builder.contract import Chunk
from demo_space.dense import DenseEncoder, DenseModelError, load_encoder
from demo_space.retrieval import ChunkIndex, clean_query, rrf_fuse
from evaluation.retrieval_eval import evaluate_retrieval, ranking_metrics, retrieval_queries, split_retrieval

CHUNKS = [
    Chunk(id="db", title="Datenbanken", text="Das Modul Datenbanken umfasst 5 ECTS und SQL.", metadata={}),
    Chunk(id="ml", title="Maschinelles Lernen", text="Regression und Klassifikation mit Python.", metadata={}),
    Chunk(id="st", title="Statistik", text="Wahrscheinlichkeiten, Tests und Konfidenzintervalle.", metadata={}),
    Chunk(id="bw", title="Betriebswirtschaft", text="Kostenrechnung und Bilanzen im ersten Semester.", metadata={}),
]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A 2-layer random BERT saved to a folder, loaded by `DenseEncoder` like any Hub encoder."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({w.lower() for c in CHUNKS for w in f"{c.title} {c.text} query passage".replace(".", " ")
                    .replace(",", " ").replace(":", " ").split()})
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512)).save_pretrained(folder)
    return DenseEncoder(str(folder))


def test_rrf_fuses_by_reciprocal_rank_with_a_fixed_tie_order():
    # a: 1/61 + 1/62; b: 1/62 + 1/61 (tie with a: both ranked first once -> lower id first); c: 1/63 + 1/63
    assert [i for i, _ in rrf_fuse([[0, 1, 2], [1, 0, 2]])] == [0, 1, 2]
    fused = rrf_fuse([[5, 7], [7, 9, 5]], k=60)
    assert [i for i, _ in fused] == [7, 5, 9]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61 + 1 / 63)
    assert fused[2][1] == pytest.approx(1 / 62)
    assert rrf_fuse([[3], []], limit=5) == [(3, pytest.approx(1 / 61))]
    assert rrf_fuse([[1, 2, 3]], limit=2) == [(1, pytest.approx(1 / 61)), (2, pytest.approx(1 / 62))]


def test_ranking_metrics_exact():
    rankings = [["a", "b", "c"], ["b", "a"], ["c", "b", "a"], ["x"]]
    m = ranking_metrics(rankings, ["a", "a", "a", "a"], ks=(1, 3))
    assert m["recall@1"] == 0.25 and m["recall@3"] == 0.75
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert m["queries"] == 4


def test_bm25_recall_and_mrr_on_a_tiny_corpus():
    questions = ["Wie viele ECTS hat Datenbanken?", "Was lehrt Maschinelles Lernen?", "Konfidenzintervalle",
                 "Wer kocht in der Mensa?"]   # the last one shares no word with any chunk: not found
    out = evaluate_retrieval(CHUNKS, questions, ["db", "ml", "st", "bw"])
    bm25 = out["bm25"]
    assert (bm25["recall@1"], bm25["recall@10"], bm25["mrr"]) == (0.75, 0.75, 0.75)
    assert out["dense"] is None and out["hybrid"] is None and out["corpus_chunks"] == 4


def test_split_retrieval_uses_the_unique_contexts_and_answerable_rows():
    rec = {c.id: c.to_record() for c in CHUNKS}
    rows = [{"question": "ECTS Datenbanken", "contexts": [rec["ml"], rec["db"]], "answerable": True, "gold_chunk_id": "db"},
            {"question": "Bilanzen", "contexts": [rec["bw"], rec["db"]], "answerable": True, "gold_chunk_id": "bw"},
            {"question": "Mensa?", "contexts": [rec["st"]], "answerable": False, "gold_chunk_id": None}]
    assert retrieval_queries(rows) == (["ECTS Datenbanken", "Bilanzen"], ["db", "bw"])
    out = split_retrieval(rows)
    assert out["corpus_chunks"] == 4 and out["bm25"]["queries"] == 2 and out["bm25"]["recall@1"] == 1.0


def test_hybrid_search_fuses_bm25_and_dense(tiny_encoder, tmp_path):
    index = ChunkIndex(CHUNKS, tiny_encoder, str(tmp_path))
    assert index.mode == "hybrid" and index.embeddings.shape == (4, 32)
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, atol=1e-5)
    hits = index.search("Datenbanken ECTS", 4)
    assert hits[0].chunk.id == "db" or hits[1].chunk.id == "db"   # BM25 ranks it first; RRF keeps it on top 2
    assert {h.method for h in hits} == {"RRF"} and len(hits) == 4  # dense ranks every chunk
    lexical = dict(index.rank_many(["Datenbanken ECTS"], 10, "bm25")[0])   # the fused decision reads these
    assert [h.bm25 for h in hits] == [pytest.approx(lexical.get(CHUNKS.index(h.chunk), 0.0)) for h in hits]
    assert max(h.bm25 for h in hits) > 0 and index.search("Datenbanken", 1, "bm25")[0].bm25 > 0
    bm25 = [i for i, _ in index.rank_many(["Datenbanken ECTS"], 10, "bm25")[0]]
    dense = [i for i, _ in index.rank_many(["Datenbanken ECTS"], 10, "dense")[0]]
    assert [i for i, _ in index.rank_many(["Datenbanken ECTS"], 4)[0]] == [i for i, _ in rrf_fuse([bm25, dense], limit=4)]
    out = evaluate_retrieval(CHUNKS, ["ECTS Datenbanken", "Bilanzen"], ["db", "bw"], tiny_encoder, str(tmp_path))
    assert out["dense_model"] == tiny_encoder.model_id
    assert out["dense"]["recall@10"] == 1.0 and out["hybrid"]["recall@10"] == 1.0   # 4 chunks: all retrieved


def test_embedding_cache_is_reused_and_invalidated_by_a_new_corpus_revision(tiny_encoder, tmp_path):
    ids, texts = [c.id for c in CHUNKS], [c.text for c in CHUNKS]
    first = tiny_encoder.encode_passages(ids, texts, tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and np.allclose(np.load(files[0]), first)
    np.save(files[0], np.full_like(first, 0.5))              # the same revision reads the file, not the model
    assert np.all(tiny_encoder.encode_passages(ids, texts, tmp_path) == 0.5)
    changed = texts[:-1] + [texts[-1] + " Neu: Controlling."]   # a new revision: one chunk's text changed
    second = tiny_encoder.encode_passages(ids, changed, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2 and not np.all(second == 0.5)
    assert np.allclose(second[:-1], first[:-1], atol=1e-5)
    assert tiny_encoder.cache_key(ids, texts) != tiny_encoder.cache_key(ids[::-1], texts[::-1])
    assert not list(tmp_path.glob(".*.tmp"))                 # atomic writes leave no temp file


def test_bm25_fallback_without_a_model_or_with_a_missing_one(tmp_path, caplog):
    encoder, note = load_encoder(None)
    assert encoder is None and "BM25 only" in note and "no encoder configured" in note
    with caplog.at_level(logging.WARNING, logger="demo_space.dense"):
        encoder, note = load_encoder(str(tmp_path / "no-such-encoder"))
    assert encoder is None and "not available -> BM25 only" in note
    assert any("no-such-encoder" in r.getMessage() for r in caplog.records)
    with pytest.raises(DenseModelError, match="no-such-encoder.*BM25 only"):
        DenseEncoder(str(tmp_path / "no-such-encoder"))
    index = ChunkIndex(CHUNKS, encoder)
    assert index.mode == "bm25" and index.search("Statistik", 2)[0].chunk.id == "st"
    with pytest.raises(ValueError, match="dense encoder"):
        index.rank_many(["Statistik"], 2, "hybrid")


@pytest.mark.parametrize("dense", [False, True])
def test_bad_queries_are_answered_cleanly(tiny_encoder, tmp_path, dense):
    index = ChunkIndex(CHUNKS, tiny_encoder if dense else None, str(tmp_path))
    for empty in ("", "   ", "\x00\x01\x02", "?!.", None):
        assert index.search(empty, 3) == []
    long_query = ("Datenbanken " * 10_000)[:100_000]
    hits = [h.chunk.id for h in index.search(long_query, 3)]   # cut to 10k characters, still "Datenbanken"
    assert (hits[0] == "db") if not dense else ("db" in hits)
    hits = index.search("\x00Statistik\x07\x1b[31m\u200b Tests\x7f", 2)
    assert "st" in [h.chunk.id for h in hits]
    assert clean_query("a\x00b\tc\nd") == "a b\tc\nd" and len(clean_query("x" * 100_000)) == 10_000
    assert index.search("Statistik", 0) == []


def test_evaluate_results_json_has_a_retrieval_section(tmp_path, capsys):
    """`rag-de evaluate` on the tiny eval fixture (random Llama, 2 rows, 2 new tokens): BM25 figures on
    the split's three chunks, in the model card and the quickstart summary; --retrieval false: none."""
    from test_eval_e2e import build_adapter, build_tiny_model, dataset_rows, write_run_files, write_split

    from model_cards.model_card import render_model_card
    from rag_de.cli import main as rag_de
    from rag_de.quickstart import print_metrics

    run = tmp_path / "run"
    base = build_tiny_model(tmp_path / "base")
    adapter = build_adapter(base, run / "adapter")
    write_run_files(run)
    write_split(tmp_path / "data", "test", dataset_rows())
    args = ["evaluate", "--base", str(base), "--adapter", str(adapter), "--dataset", str(tmp_path / "data"),
            "--split", "test", "--out", str(run / "eval"), "--batch-size", "4", "--max-new-tokens", "2",
            "--quantization", "none", "--compute-loss", "false", "--readings", "evidence",
            "--base-readings", "false", "--answer-modes", "extracted"]
    assert rag_de(args) == 0
    results = json.loads((run / "eval" / "results.json").read_text())
    retrieval = results["retrieval"]
    # 6 rows, 4 answerable, corpus = 3 unique chunks; every answerable question names its module
    assert retrieval["corpus_chunks"] == 3 and retrieval["bm25"]["queries"] == 4
    assert retrieval["bm25"]["recall@1"] == 1.0 and retrieval["bm25"]["mrr"] == 1.0
    assert retrieval["dense"] is None and retrieval["hybrid"] is None
    card = render_model_card(run)      # the card's body shows it; the model-index keeps the adapter's figures
    assert "### Retrieval" in card and "| BM25 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in card
    print_metrics(results)
    assert "retrieval (3 chunks)" in capsys.readouterr().out
    assert rag_de(args + ["--retrieval", "false"]) == 0
    assert json.loads((run / "eval" / "results.json").read_text())["retrieval"] is None
    assert "### Retrieval" not in render_model_card(run)


def test_demo_says_which_retrieval_it_uses():
    from demo_space.app import DemoService
    from demo_space.settings import DemoConfig

    encoder, note = load_encoder(DemoConfig(dataset="org/x").dense_model)   # the default: no encoder
    service = DemoService(DemoConfig(dataset="org/x"), None, ChunkIndex(CHUNKS, encoder), retrieval_note=note)
    assert "4 Abschnitten" in service._corpus_status()
    assert "dense retrieval off: no encoder configured -> BM25 only" in service._corpus_status()
    assert DemoConfig.from_env({"RAG_DE_DENSE_MODEL": "intfloat/multilingual-e5-small"}).dense_model \
        == "intfloat/multilingual-e5-small"
