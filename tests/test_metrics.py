"""Metric definitions on hand-made cases whose values are known in advance."""

from __future__ import annotations

import math

import pytest

from dataset_builder.contract import REFUSAL, Chunk, format_answer
from evaluation.metrics import aggregate, answered_correctness, answered_f1, citation_accuracy_multi, f1_ac, \
    f1_gr, faithfulness, refusal_auc, refusal_prf, rouge_l, score_example, sentence_bleu, span_recall, token_f1

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


# ----- headline and Trust-Align metrics (issue 12), values by hand

def test_citation_accuracy_multi_counts_only_answerable_rows_with_two_or_more_chunks():
    one_chunk = {**row("single"), "contexts": [CHUNKS[1].to_record()],
                 "answer": format_answer("Das Modul Datenbanken umfasst 5 ECTS.", 1, "Datenbanken")}
    rows = [one_chunk, row("a1"), row("a2"), row("u1", answerable=False)]
    preds = ["Laut Abschnitt [1]: Das Modul umfasst 5 ECTS.", RIGHT, WRONG_CITATION, REFUSAL]
    scores = [score_example(p, r) for p, r in zip(preds, rows)]
    assert citation_accuracy_multi(scores, rows) == 0.5                # a1 right, a2 wrong; 'single' not counted
    metrics = aggregate(scores, rows, preds)
    assert metrics["citation_accuracy"] == pytest.approx(2 / 3)        # the trivially right [1] lifts it
    assert metrics["citation_accuracy_multi"] == 0.5
    assert citation_accuracy_multi(scores[:1], rows[:1]) is None       # no multi-chunk row: undefined


def test_answered_f1_and_f1_gr_on_a_hand_computed_confusion():
    # The confusion of the refusal test: answered = u3, a3. Answered F1: TP a3, FP u3, FN a1 a2 ->
    # P 1/2, R 1/3, F1 0.4; refusal F1 4/7; F1-GR = (4/7 + 0.4) / 2 = 17/35.
    refused = [True, True, False, True, True, False]
    answerable = [False, False, False, True, True, True]
    assert answered_f1(refused, answerable) == pytest.approx(0.4)
    assert refusal_prf(refused, answerable)["refusal_f1"] == pytest.approx(4 / 7)
    assert f1_gr(refused, answerable) == pytest.approx(17 / 35)
    # The two trivial rules on a balanced split score the same F1-GR, 1/3: one class's F1 is 2/3, the other 0.
    balanced = [True, True, False, False]
    assert f1_gr([True] * 4, balanced) == pytest.approx(1 / 3) == f1_gr([False] * 4, balanced)
    assert answered_f1([True] * 4, balanced) == 0.0 and answered_f1([False] * 4, balanced) == pytest.approx(2 / 3)
    assert f1_gr([False, True], [True, False]) == 1.0
    assert answered_f1([True], [False]) is None and f1_gr([True], [False]) is None   # no answerable example
    assert f1_gr([True], [True]) is None                                             # no unanswerable example


def test_answered_correctness_and_f1_ac_by_hand():
    # a1 answered with the span, a2 answered without it, a3 refused, u1 answered (missed refusal), u2 refused.
    rows = [row("a1"), row("a2"), row("a3"), row("u1", answerable=False), row("u2", answerable=False)]
    preds = [RIGHT, "Das Modul Datenbanken umfasst 7 ECTS [2].", REFUSAL, RIGHT, REFUSAL]
    scores = [score_example(p, r) for p, r in zip(preds, rows)]
    assert answered_correctness(scores, rows) == 0.5                    # 1 of the 2 answered answerable rows
    # P_AC = 1 / |answered| = 1/3 (a1, a2, u1); R_AC = 1 / |answerable| = 1/3 (a1, a2, a3) -> F1-AC 1/3
    assert f1_ac(scores, rows) == pytest.approx(1 / 3)
    metrics = aggregate(scores, rows, preds)
    assert metrics["answered_correctness"] == 0.5 and metrics["f1_ac"] == pytest.approx(1 / 3)
    assert metrics["gold_span_recall"] == pytest.approx(1 / 3)          # counts the refusal as a miss
    assert answered_correctness(scores[2:3], rows[2:3]) is None         # nothing answered: undefined
    no_span = {**row("a4"), "gold_span": ""}
    assert answered_correctness([score_example(RIGHT, no_span)], [no_span]) is None


def test_refusal_auc_is_mann_whitney_with_ties_counted_half():
    # positives (unanswerable) 0.9, 0.8, 0.3 vs negatives 0.7, 0.1, 0.3: 3 + 3 + (0 + 1 + 0.5) of 9 pairs
    answerable = [False, False, False, True, True, True]
    assert refusal_auc([0.9, 0.8, 0.3, 0.7, 0.1, 0.3], answerable) == pytest.approx(7.5 / 9)
    assert refusal_auc([1, 1, 1, 1, 1, 1], answerable) == 0.5           # a constant score ranks nothing
    assert refusal_auc([3, 2, 2.5, 1, 0, -1], answerable) == 1.0
    assert refusal_auc([-3, -2, -2.5, 1, 0, 5], answerable) == 0.0
    assert refusal_auc([0.1, 0.2], [True, True]) is None
    with pytest.raises(ValueError, match="2 scores for 3 examples"):
        refusal_auc([0.1, 0.2], [True, False, True])
    rows = [row("a1"), row("u1", answerable=False)]
    preds = [RIGHT, REFUSAL]
    scores = [score_example(p, r) for p, r in zip(preds, rows)]
    assert "refusal_auc" not in aggregate(scores, rows, preds)          # free text carries no score
    assert aggregate(scores, rows, preds, refusal_scores=[0.2, 0.9])["refusal_auc"] == 1.0
