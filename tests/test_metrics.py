"""Metric definitions on hand-made cases whose values are known in advance."""

from __future__ import annotations

import math

import pytest

from dataset_builder.contract import REFUSAL, Chunk, format_answer
from evaluation.metrics import aggregate, faithfulness, refusal_prf, rouge_l, score_example, sentence_bleu, \
    span_recall, token_f1

CHUNKS = [
    Chunk(id="ml", title="Maschinelles Lernen", text="Das Modul vermittelt Regression und Klassifikation."),
    Chunk(id="db", title="Datenbanken", text="Das Modul Datenbanken umfasst 5 ECTS.", metadata={"module_code": "DB-101"}),
]


def row(rid: str, answerable: bool = True, gold: str = "db") -> dict:
    return {
        "id": rid, "question": "Wie viele ECTS hat Datenbanken?", "contexts": [c.to_record() for c in CHUNKS],
        "answer": format_answer("Das Modul Datenbanken umfasst 5 ECTS.", 2, "Datenbanken") if answerable else REFUSAL,
        "gold_chunk_id": gold if answerable else None, "answerable": answerable,
        "gold_span": "5 ECTS" if answerable else "",
    }


RIGHT = "Das Modul Datenbanken umfasst 5 ECTS [2]."
WRONG_CITATION = "Das Modul Datenbanken umfasst 5 ECTS [1]."


def test_one_wrong_citation_in_four_lowers_citation_accuracy_by_a_quarter():
    rows = [row(f"a{i}") for i in range(4)] + [row("u1", answerable=False)]
    correct = [RIGHT] * 4 + [REFUSAL]
    one_wrong = [RIGHT] * 3 + [WRONG_CITATION] + [REFUSAL]
    before = aggregate([score_example(p, r) for p, r in zip(correct, rows)], rows, correct)
    after = aggregate([score_example(p, r) for p, r in zip(one_wrong, rows)], rows, one_wrong)
    assert before["citation_accuracy"] == 1.0
    assert after["citation_accuracy"] == 0.75          # 3 of the 4 answerable; the unanswerable row is not counted
    assert score_example(WRONG_CITATION, rows[0]).wrong_citation


def test_first_citation_decides_and_out_of_range_numbers_are_wrong():
    assert score_example("Das Modul umfasst 5 ECTS [2], siehe auch [1].", row("a")).citation_correct == 1.0
    assert score_example("Das Modul umfasst 5 ECTS [1], siehe auch [2].", row("a")).citation_correct == 0.0
    assert score_example("Das Modul umfasst 5 ECTS [7].", row("a")).citation_correct == 0.0
    assert score_example("Das Modul umfasst 5 ECTS.", row("a")).citation_correct == 0.0
    assert score_example(RIGHT, row("u", answerable=False)).citation_correct is None


def test_refusal_on_answerable_example_is_a_needless_refusal():
    score = score_example(REFUSAL, row("a"))
    assert score.refused and score.needless_refusal and not score.missed_refusal
    assert score.citation_correct == 0.0 and not score.wrong_citation   # counted as a refusal, not a miscitation
    assert score.faithfulness is None                                    # a refusal claims nothing
    rows = [row("a1"), row("a2"), row("u1", answerable=False)]
    preds = [REFUSAL, RIGHT, REFUSAL]
    metrics = aggregate([score_example(p, r) for p, r in zip(preds, rows)], rows, preds)
    assert metrics["needless_refusal_rate"] == 0.5
    assert metrics["refusal_precision"] == 0.5 and metrics["refusal_recall"] == 1.0


def test_answer_on_unanswerable_example_is_a_missed_refusal():
    score = score_example(RIGHT, row("u", answerable=False))
    assert score.missed_refusal and not score.needless_refusal and not score.refused


def test_refusal_precision_recall_f1_on_a_hand_computed_confusion():
    # positives = unanswerable. TP: u1, u2 refused; FN: u3 answered; FP: a1, a2 refused; TN: a3 answered.
    refused = [True, True, False, True, True, False]
    answerable = [False, False, False, True, True, True]
    got = refusal_prf(refused, answerable)
    assert got["refusal_precision"] == pytest.approx(2 / 4)
    assert got["refusal_recall"] == pytest.approx(2 / 3)
    assert got["refusal_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert refusal_prf([False, False], [False, True]) == {"refusal_precision": 0.0, "refusal_recall": 0.0,
                                                          "refusal_f1": 0.0}
    assert refusal_prf([True], [True])["refusal_recall"] is None      # no unanswerable example: undefined


def test_faithfulness_is_the_share_of_content_words_found_in_the_cited_chunk():
    db = CHUNKS[1]
    assert faithfulness("Das Modul Datenbanken umfasst 5 ECTS.", [db]) == 1.0
    # content words: modul, datenbanken, umfasst, 7, punkte -> 3 of 5 in the chunk
    assert faithfulness("Das Modul Datenbanken umfasst 7 Punkte.", [db]) == pytest.approx(3 / 5)
    # modul, db, 101 (from the rendered metadata "Modulkürzel: DB-101") found; kürzel is not a chunk word
    assert faithfulness("Das Modul hat DB-101 als Kürzel.", [db]) == pytest.approx(3 / 4)
    assert faithfulness("Das Modul umfasst 5 ECTS.", []) == 0.0        # nothing cited: nothing grounded
    assert faithfulness("Das ist es.", [db]) is None                   # only stopwords
    assert score_example("Das Modul Datenbanken umfasst 7 Punkte [2].", row("a")).faithfulness == pytest.approx(0.6)


def test_lexical_metrics_ignore_citations_and_source_suffix_and_keep_umlauts():
    gold = row("a")["answer"]
    assert gold.startswith("Laut Abschnitt [2] (Datenbanken): ")
    score = score_example(RIGHT, row("a"))
    assert score.rouge_l == pytest.approx(1.0) and score.token_f1 == pytest.approx(1.0)
    assert score.bleu == pytest.approx(1.0) and score.gold_span_recall == 1.0
    assert rouge_l("Größe der Prüfung", "Grosse der Pruefung") == pytest.approx(1 / 3)   # only "der" matches
    assert token_f1("a b c", "a b d") == pytest.approx(2 / 3)
    assert span_recall("Es sind 15 ECTS.", "5 ECTS") == 0.0                              # whole words only
    assert span_recall("Es sind „5 ECTS“.", "5 ects") == 1.0
    assert sentence_bleu("völlig anders", "Das Modul umfasst 5 ECTS") < 0.1


def test_loss_aggregates_token_weighted_and_perplexity_is_its_exponential():
    rows = [row("a1"), row("a2")]
    preds = [RIGHT, RIGHT]
    metrics = aggregate([score_example(p, r) for p, r in zip(preds, rows)], rows, preds,
                        losses=[(2.0, 1), (6.0, 3)])
    assert metrics["eval_loss"] == pytest.approx(2.0)
    assert metrics["perplexity"] == pytest.approx(math.exp(2.0))
