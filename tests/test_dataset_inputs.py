"""Bad input is never dropped silently: a clear error naming file and record, or a counted skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_builder.build_config import BuildConfig
from dataset_builder.pipeline import BuildInputs, build
from dataset_builder.records import InputError
from dataset_builder.schema import load_built

CONTEXT_A = ("Das Modul Statistik hat 5 ECTS-Punkte. Die Prüfung ist eine Klausur von 90 Minuten. "
             "Die Klausur findet im Februar statt.")
CONTEXT_B = "Datenbanken behandelt SQL und Transaktionen. Das Modul hat 5 ECTS-Punkte."


def squad(articles):
    return {"version": "1.1", "data": articles}


def article(title, paragraphs):
    return {"title": title, "paragraphs": paragraphs}


def qa(qid, question, text, start):
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


def good_articles():
    """Three articles (one per split), each with a sound question."""
    return [article(f"Artikel_{i}", [{"context": CONTEXT_B, "qas": [qa(f"ok{i}", "Was behandelt Datenbanken?", "SQL", CONTEXT_B.index("SQL"))]}])
            for i in range(3)]


def run(tmp_path, data, config=None, name="in.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return build(BuildInputs(squad=[str(path)]), tmp_path / "out", config or BuildConfig(unanswerable_share=0),
                 progress=False)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "kaputt.json"
    path.write_text('{"data": [\n  {"title": "x",\n  "paragraphs": [}\n]}', encoding="utf-8")
    with pytest.raises(InputError, match=r"kaputt\.json: malformed JSON at line 3"):
        build(BuildInputs(squad=[str(path)]), tmp_path / "out", progress=False)


def test_not_squad_format_is_explained(tmp_path):
    with pytest.raises(InputError, match=r"in\.json: not SQuAD format"):
        run(tmp_path, [{"question": "x"}])


def test_non_utf8_files_name_file_and_offset(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(squad([])).encode()[:-1] + ' "Prüfung"}'.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.json: not UTF-8 \(byte 0xfc at offset \d+, line 1\).*iconv"):
        build(BuildInputs(squad=[str(path)]), tmp_path / "out", progress=False)
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "modul.md").write_bytes("# Modul\nDie Prüfung ist mündlich.".encode("cp1252"))
    (tmp_path / "qa.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(InputError, match=r"modul\.md: not UTF-8"):
        build(BuildInputs(corpora=[(str(corpus), str(tmp_path / "qa.jsonl"))]), tmp_path / "out", progress=False)


def test_jsonl_is_read_line_by_line_with_exact_positions(tmp_path):
    """BOM, blank lines, U+2028 inside a JSON string (one line, not two), and a bad byte's position."""
    from dataset_builder.records import iter_jsonl

    path = tmp_path / "qa.jsonl"
    first = json.dumps({"id": "a", "question": "Zeile\u2028mit Trenner?"}, ensure_ascii=False).encode()
    path.write_bytes(b"\xef\xbb\xbf" + first + b"\r\n\n" + b'{"id": "b"}\n')
    assert [(n, r["id"]) for n, r in iter_jsonl(path)] == [(1, "a"), (3, "b")]
    assert next(iter_jsonl(path))[1]["question"] == "Zeile\u2028mit Trenner?"
    bad = b'{"id": "a"}\n{"id": "' + "Prüfung".encode("latin-1") + b'"}\n'
    path.write_bytes(bad)
    with pytest.raises(InputError, match=rf"qa\.jsonl: not UTF-8 \(byte 0xfc at offset {bad.index(0xfc)}, line 2\)"):
        list(iter_jsonl(path))


def test_answer_start_repaired_when_unique_and_reported_when_ambiguous(tmp_path):
    wrong = CONTEXT_A.index("90 Minuten") + 7
    paragraphs = [{"context": CONTEXT_A, "qas": [
        qa("rep", "Wie lange dauert die Klausur?", "90 Minuten", wrong),       # unique -> repaired
        qa("amb", "Was für eine Prüfung gibt es?", "Klausur", 3),              # twice -> reported
        qa("gone", "Wann ist die Prüfung?", "im März", 0),                     # absent -> reported
    ]}]
    stats = run(tmp_path, squad([article("Statistik", paragraphs)] + good_articles()))
    counts = stats["skipped"]["counts"]
    assert counts["answer_start_repaired"] == 1
    assert counts["answer_start_ambiguous"] == 1 and counts["answer_not_in_context"] == 1
    ambiguous = stats["skipped"]["examples"]["answer_start_ambiguous"][0]
    assert "in.json: data[0].paragraphs[0].qas[1] (id amb)" in ambiguous["record"]
    assert "occurs 2 times" in ambiguous["detail"]
    rows = {r["id"]: r for split in load_built(tmp_path / "out").values() for r in split}
    assert rows["rep"]["gold_span"] == "90 Minuten" and "90 Minuten" in rows["rep"]["answer"]
    assert "amb" not in rows and "gone" not in rows


def test_empty_contexts_duplicate_ids_and_empty_questions_are_counted(tmp_path):
    articles = [article("Leer", [{"context": "   ", "qas": [qa("e1", "Frage?", "x", 0), qa("e2", "Frage?", "y", 0)]}]),
                article("Dup", [{"context": CONTEXT_B, "qas": [
                    qa("ok0", "Noch einmal?", "SQL", CONTEXT_B.index("SQL")),   # id of a later article's question
                    qa("d2", "", "SQL", CONTEXT_B.index("SQL"))]}])] + good_articles()
    stats = run(tmp_path, squad(articles))
    counts = stats["skipped"]["counts"]
    assert counts["empty_context"] == 2 and counts["empty_question"] == 1 and counts["duplicate_id"] == 1
    assert stats["skipped"]["examples"]["duplicate_id"][0]["record"].endswith("(id ok0)")
    # nothing lost: each of the 7 question records is either an example or a counted skip
    assert stats["totals"]["examples"] == 3 and stats["totals"]["records_skipped"] == 4
    assert stats["totals"]["examples"] + sum(counts.values()) == 7


def test_strict_mode_raises_on_the_first_bad_record(tmp_path):
    articles = [article("Leer", [{"context": "", "qas": [qa("e1", "Frage?", "x", 0)]}])] + good_articles()
    with pytest.raises(InputError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id e1\): the paragraph's context is empty"):
        run(tmp_path, squad(articles), BuildConfig(strict=True))


def write_corpus(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    (docs / "STAT.md").write_text("---\nmodule_code: STAT\nects: 5\nstart: 2024-10-01\n---\n# STAT Statistik\n\n"
                                  "## Prüfung\nDie Prüfung ist eine Klausur von 90 Minuten.\n", encoding="utf-8")
    (docs / "notizen.txt").write_text("Die Bibliothek öffnet um 8 Uhr. Sie schließt um 22 Uhr.", encoding="utf-8")
    (docs / "plan.pdf").write_bytes(b"%PDF-1.4")
    (docs / "leer.md").write_text("---\nmodule_code: LEER\n---\n", encoding="utf-8")
    return docs


def test_corpus_and_qa_problems_are_counted_with_their_line(tmp_path):
    docs = write_corpus(tmp_path)
    lines = [
        {"id": "a1", "question": "Wie lange dauert die Klausur in STAT?", "answer": "90 Minuten", "document": "STAT.md", "answerable": True},
        {"id": "a2", "question": "Wann öffnet die Bibliothek?", "answer": "um 8 Uhr", "document": "notizen.txt", "answerable": True},
        {"id": "a3", "question": "Wann schließt die Mensa?", "answer": "", "document": "", "answerable": False},
        {"id": "b1", "question": "Wie viele ECTS?", "answer": "7 ECTS", "document": "STAT.md", "answerable": True},
        {"id": "b2", "question": "Wer lehrt?", "answer": "Dr. X", "document": "FEHLT.md", "answerable": True},
        {"id": "b3", "question": "Wie lange?", "answer": "", "document": "STAT.md", "answerable": True},
    ]
    qa_path = tmp_path / "qa.jsonl"
    qa_path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n", encoding="utf-8")
    config = BuildConfig(unanswerable_share=0, train_fraction=1.0, validation_fraction=0.0, test_fraction=0.0)
    stats = build(BuildInputs(corpora=[(str(docs), str(qa_path))]), tmp_path / "out", config, progress=False)
    counts = stats["skipped"]["counts"]
    assert counts == {"answer_not_in_document": 1, "unknown_document": 1, "no_answer": 1,
                      "unsupported_file": 1, "empty_document": 1}
    assert stats["skipped"]["examples"]["unknown_document"][0]["record"].endswith("qa.jsonl:5 (id b2)")
    rows = {r["id"]: r for r in load_built(tmp_path / "out")["train"]}
    assert set(rows) == {"a1", "a2", "a3"}
    stat_chunk = next(c for c in rows["a1"]["contexts"] if c["id"] == rows["a1"]["gold_chunk_id"])
    assert json.loads(stat_chunk["metadata"]) == {"module_code": "STAT", "ects": 5, "start": "2024-10-01"}
    assert stat_chunk["title"] == "STAT Statistik" and stat_chunk["source"] == "STAT.md"
    assert rows["a2"]["gold_chunk_id"] == "notizen#0"            # plain text without front matter


def test_malformed_qa_line_names_the_line(tmp_path):
    docs = write_corpus(tmp_path)
    qa_path = tmp_path / "qa.jsonl"
    qa_path.write_text('{"id": "a", "question": "x?", "answer": "", "answerable": false}\n{"id": "b", \n',
                       encoding="utf-8")
    with pytest.raises(InputError, match=r"qa\.jsonl:2: malformed JSON line"):
        build(BuildInputs(corpora=[(str(docs), str(qa_path))]), tmp_path / "out", progress=False)


def test_jsonl_corpus_with_metadata(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    records = [{"id": f"m{i}", "title": f"Modul {i}", "source": f"handbuch.pdf#S{i}",
                "text": f"Das Modul {i} hat {i + 3} ECTS-Punkte und endet mit einer Klausur.",
                "metadata": {"module_code": f"M{i}", "ects": i + 3}} for i in range(6)]
    corpus.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    qa_path = tmp_path / "qa.jsonl"
    qa_path.write_text("\n".join(json.dumps({"id": f"q{i}", "question": f"Wie viele ECTS hat Modul {i}?",
                                             "answer": f"{i + 3} ECTS-Punkte", "document": f"m{i}"})
                                 for i in range(6)), encoding="utf-8")
    stats = build(BuildInputs(corpora=[(str(corpus), str(qa_path))]), tmp_path / "out",
                  BuildConfig(unanswerable_share=0), progress=False)
    assert stats["totals"]["examples"] == 6 and not stats["skipped"]["counts"]
    row = next(r for split in load_built(tmp_path / "out").values() for r in split)
    gold = next(c for c in row["contexts"] if c["id"] == row["gold_chunk_id"])
    assert json.loads(gold["metadata"])["module_code"] == row["gold_chunk_id"].split("#")[0].replace("m", "M")
    assert gold["source"].startswith("handbuch.pdf#S")
