"""The prompt contract, and the promises every built dataset keeps (sample-like corpus and XQuAD-de).

Render -> parse round trip; answerable examples cite their gold chunk and hold the gold span;
refusals have no gold chunk (nor the answer) in their contexts; no source document in two splits;
the same seed gives byte-identical Parquet files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_builder.answer_check import normalize
from dataset_builder.build_config import BuildConfig
from dataset_builder.contract import (REFUSAL, SYSTEM_PROMPT, Chunk, chat_messages, contexts_from_column,
                                      format_answer, parse_answer, prompt_messages, recite_answer,
                                      split_messages)
from dataset_builder.pipeline import BuildInputs, build
from dataset_builder.schema import COLUMNS, load_built

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
CHUNKS = [Chunk("a#0", "Die Klausur dauert 90 Minuten.", "Statistik", "STAT.md", {"module_code": "STAT", "ects": 5}),
          Chunk("b#1", "Die Mensa öffnet um 11 Uhr.", "Campus", "campus.md")]


def test_render_parse_round_trip():
    messages = chat_messages("Wie lange dauert die Klausur?", CHUNKS, format_answer("Die Klausur dauert 90 Minuten.", 1, "Statistik"))
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    user = messages[1]["content"]
    assert "[1] Titel: Statistik | Quelle: STAT.md | Modulkürzel: STAT | ECTS: 5\nDie Klausur dauert 90 Minuten." in user
    assert user.endswith("Frage: Wie lange dauert die Klausur?")
    assert messages[-1]["content"] == "Laut Abschnitt [1] (Statistik): Die Klausur dauert 90 Minuten."
    parsed = parse_answer(messages[-1]["content"], CHUNKS)
    assert parsed.text == "Die Klausur dauert 90 Minuten." and parsed.cited == [1]
    # citations elsewhere in the text and an old-style source suffix are read as well
    legacy = parse_answer("Die Klausur dauert 90 Minuten [2]. (Quelle: Campus)", CHUNKS)
    assert legacy.text == "Die Klausur dauert 90 Minuten." and legacy.cited_chunk_ids == ["b#1"]
    assert parse_answer("Laut Abschnitt [1] (Modul (neu)): Ja.").text == "Ja."
    assert recite_answer("Sie dauert 90 Minuten [1].", 2, "Campus") == "Laut Abschnitt [2] (Campus): Sie dauert 90 Minuten."
    assert recite_answer("Laut Abschnitt [2] dauert sie 90 Minuten.", 2, "Campus") == \
        "Laut Abschnitt [2] (Campus) dauert sie 90 Minuten."
    assert parsed.cited_chunk_ids == ["a#0"] and not parsed.is_refusal
    refusal = parse_answer(REFUSAL, CHUNKS)
    assert refusal.is_refusal and refusal.cited == []
    prompt, completion = split_messages(messages)
    assert prompt == prompt_messages("Wie lange dauert die Klausur?", CHUNKS) and completion == messages[-1:]
    assert contexts_from_column([c.to_record() for c in CHUNKS]) == CHUNKS
    # records keep metadata order, so a prompt re-rendered from the contexts column is the same prompt
    shuffled = Chunk("c#0", "Text.", "T", "S", {"module_code": "X", "ects": 5, "name": "N"})
    assert prompt_messages("F?", contexts_from_column([shuffled.to_record()])) == prompt_messages("F?", [shuffled])


def _inputs_mini():
    return BuildInputs(corpora=[(str(FIXTURE / "catalog"), str(FIXTURE / "qa.jsonl"))])


def _original_spans_mini() -> dict[str, tuple[str, str]]:
    out = {}
    for line in (FIXTURE / "qa.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        out[r["id"]] = (r["answer"], Path(r["document"]).stem)
    return out


def _original_spans_squad(path: Path) -> dict[str, tuple[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {q["id"]: (q["answers"][0]["text"].strip(), None) for a in data["data"] for p in a["paragraphs"] for q in p["qas"]}


@pytest.fixture(scope="module")
def mini_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    stats = build(_inputs_mini(), out, BuildConfig(seed=3), progress=False)
    return out, stats, _original_spans_mini()


@pytest.fixture(scope="module")
def xquad_build(tmp_path_factory):
    from helpers import XQUAD_DE

    if not XQUAD_DE.exists():
        pytest.fail(f"{XQUAD_DE} is missing: tests expect ../shared/data/xquad-de beside the checkout")
    out = tmp_path_factory.mktemp("xquad")
    stats = build(BuildInputs(squad=[str(XQUAD_DE)]), out, BuildConfig(seed=5), progress=False)
    return out, stats, _original_spans_squad(XQUAD_DE)


@pytest.fixture(params=["mini_build", "xquad_build"])
def built(request):
    return request.getfixturevalue(request.param)


def test_columns_and_messages_match_the_contract(built):
    out, stats, _ = built
    dd = load_built(out)
    assert set(dd) == {"train", "validation", "test"}
    for split, ds in dd.items():
        assert tuple(ds.column_names) == COLUMNS
        assert len(ds) == stats["splits"][split]["examples"] > 0
        for row in ds:
            assert row["messages"] == chat_messages(row["question"], contexts_from_column(row["contexts"]), row["answer"])


def test_answerable_examples_cite_their_gold_chunk_and_hold_the_span(built):
    out, _, _ = built
    n = 0
    for ds in load_built(out).values():
        for row in ds.filter(lambda r: r["answerable"]):
            chunks = contexts_from_column(row["contexts"])
            parsed = parse_answer(row["answer"], chunks)
            assert parsed.cited_chunk_ids == [row["gold_chunk_id"]], row["id"]
            gold = next(c for c in chunks if c.id == row["gold_chunk_id"])
            assert row["gold_span"] and row["gold_span"] in gold.text
            assert normalize(row["gold_span"]) in normalize(parsed.text)
            # hard negatives never hold the gold span
            assert not any(row["gold_span"].casefold() in c.text.casefold() for c in chunks if c.id != gold.id)
            n += 1
    assert n > 0


def test_refusals_have_no_gold_chunk_in_their_contexts(built):
    out, _, spans = built
    n = 0
    for ds in load_built(out).values():
        for row in ds.filter(lambda r: not r["answerable"]):
            assert row["answer"] == REFUSAL and row["gold_chunk_id"] is None and row["gold_span"] == ""
            assert 1 <= len(row["contexts"])
            original, document = spans[row["id"]]
            if original:   # an answerable question turned into a refusal: its answer must be gone
                assert not any(original.casefold() in c["text"].casefold() for c in row["contexts"]), row["id"]
                assert not any(c["id"].split("#")[0] == document for c in row["contexts"])
            n += 1
    assert n > 0


def test_shares_and_context_counts(built):
    out, stats, _ = built
    config = BuildConfig()
    for split, s in stats["splits"].items():
        assert abs(s["unanswerable"] - round(config.unanswerable_share * s["examples"])) <= 1, split
    counts = {int(k) for s in stats["splits"].values() for k in s["contexts_per_example"]}
    assert counts == set(range(1, config.k + 1))     # 1..k chunks, varying


def test_no_source_document_in_two_splits(built):
    out, _, _ = built
    docs, chunk_docs = {}, {}
    for split, ds in load_built(out).items():
        docs[split] = set(ds["source_doc"])
        chunk_docs[split] = {c["id"].split("#")[0] for row in ds["contexts"] for c in row}
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not docs[a] & docs[b]
        assert not chunk_docs[a] & chunk_docs[b]    # no context leaks either


def test_same_seed_gives_identical_parquet_and_another_seed_differs(mini_build, tmp_path):
    out, stats, _ = mini_build
    again = build(_inputs_mini(), tmp_path / "again", BuildConfig(seed=3), progress=False)
    assert again["files"] == stats["files"]
    for name in stats["files"]:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    other = build(_inputs_mini(), tmp_path / "other", BuildConfig(seed=4), progress=False)
    assert other["files"] != stats["files"]
