"""The trivial baselines on hand-made rows whose BM25 ranking and metrics are known in advance.

Each question shares words with exactly one chunk of the split (its gold chunk, or for `u2` a chunk that
does not hold the answer), so every other chunk scores exactly 0 and the BM25 top chunk is known without
computing a score; the expected metrics below are worked out by hand from those choices.
"""

from __future__ import annotations

import pytest

from dataset_builder.contract import REFUSAL, Chunk, format_answer, parse_answer
from evaluation.baselines import always_cite_1, always_refuse, best_sentence, bm25, chunk_scores, \
    evaluate_baselines, top_chunks, tuned_bm25
from evaluation.thresholds import tune_threshold

MENSA = Chunk(id="mensa", title="Mensa", text="Die Mensa öffnet um 11 Uhr. Das Essen kostet 4 Euro.")
BIB = Chunk(id="bib", title="Bibliothek", source="bib.md",
            text="Die Bibliothek leiht Bücher für vier Wochen aus. Sie schließt um 20 Uhr.")
SPORT = Chunk(id="sport", title="Hochschulsport", text="Der Hochschulsport bietet Schwimmen und Klettern an.",
              metadata={"ort": "Halle B"})
ROWS_SPEC = [  # id, question, prompt chunks, gold chunk (None: unanswerable), gold span
    ("a1", "Wann öffnet die Mensa?", [BIB, MENSA], "mensa", "11 Uhr"),
    ("a2", "Wie lange leiht die Bibliothek Bücher aus?", [BIB, SPORT], "bib", "vier Wochen"),
    ("a3", "Welche Kurse bietet der Hochschulsport an?", [MENSA, SPORT], "sport", "Schwimmen und Klettern"),
    ("a4", "Was kostet das Essen?", [MENSA], "mensa", "4 Euro"),
    ("u1", "Wer ist der Präsident?", [MENSA, BIB], None, ""),                 # no word in any chunk
    ("u2", "Wann schließt das Schwimmbad?", [BIB], None, ""),                 # one word of BIB: a hard negative
]


def make_rows(spec=ROWS_SPEC) -> list[dict]:
    rows = []
    for rid, question, chunks, gold, span in spec:
        if gold is None:
            answer = REFUSAL
        else:
            number = [c.id for c in chunks].index(gold) + 1
            answer = format_answer(best_sentence(question, chunks[number - 1]), number, chunks[number - 1].title)
        rows.append({"id": rid, "question": question, "contexts": [c.to_record() for c in chunks], "answer": answer,
                     "gold_chunk_id": gold, "answerable": gold is not None, "gold_span": span})
    return rows


def test_bm25_scores_only_chunks_that_share_a_question_word():
    scores = chunk_scores(make_rows())
    zero = [(0, 0), (1, 1), (2, 0), (4, 0), (4, 1)]          # (row, chunk) pairs without a shared word
    assert all(scores[r][c] == 0.0 for r, c in zero)
    assert all(scores[r][c] > 0 for r, c in [(0, 1), (1, 0), (2, 1), (3, 0), (5, 0)])
    assert [n for n, _ in top_chunks(scores)] == [2, 1, 2, 1, 1, 1]   # u1: all 0, tie -> the lower number
    tops = [s for _, s in top_chunks(scores)]
    # u2's one shared word in the longer BIB chunk scores below every answerable question's 2-3 words
    assert tops[4] == 0.0 and 0 < tops[5] < min(tops[:4])


def test_best_sentence_is_the_one_sharing_most_question_words():
    assert best_sentence("Wann öffnet die Mensa?", MENSA) == "Die Mensa öffnet um 11 Uhr."
    assert best_sentence("Was kostet das Essen?", MENSA) == "Das Essen kostet 4 Euro."
    assert best_sentence("Wer ist der Präsident?", BIB) == "Die Bibliothek leiht Bücher für vier Wochen aus."  # tie: first


def test_bm25_threshold_is_the_adapter_rule_on_minus_the_top_score():
    # top scores 5, 3, 1, .5, 0 -> refusal scores -5 .. 0; candidates -6, -4, -2, -.75, -.25, 1 refuse
    # 5, 4, 3, 2, 1, 0 rows -> F1-GR 2/7, 7/12, 0.8, 7/12, 16/21, 3/8 (e.g. at -2: refusal P 2/3 R 1,
    # answered P 1 R 2/3): refuse where -top >= -2, i.e. at a top score <= 2
    tops, answerable = [5.0, 3.0, 1.0, 0.5, 0.0], [True, True, False, True, False]
    assert tune_threshold([-t for t in tops], answerable, max_needless=1.0) == (-2.0, pytest.approx(0.8))
    # the default limit (needless refusals <= 0.15 of the 3 answerable rows: none) leaves -.25 and 1:
    # refuse only the top score 0 (F1-GR 16/21)
    assert tune_threshold([-t for t in tops], answerable) == (-0.25, pytest.approx(16 / 21))


def test_rules_answer_in_the_contract_form():
    rows = make_rows()
    cite_1 = always_cite_1(rows).predictions
    assert cite_1[0] == "Laut Abschnitt [1] (Bibliothek): Die Bibliothek leiht Bücher für vier Wochen aus."
    assert all(parse_answer(p).cited == [1] and not parse_answer(p).is_refusal for p in cite_1)
    assert always_refuse(rows).predictions == [REFUSAL] * 6
    run = bm25(rows, threshold=0.0)                                         # refuse at a top score <= 0: u1
    assert run.predictions[0] == "Laut Abschnitt [2] (Mensa): Die Mensa öffnet um 11 Uhr."
    assert [p == REFUSAL for p in run.predictions] == [False, False, False, False, True, False]
    assert run.refusal_scores[4] == 0.0 and run.refusal_scores[0] < 0       # minus the top score


def test_baseline_metrics_on_the_hand_made_split():
    rows = make_rows()
    got = evaluate_baselines(rows, rows, "test", "tuned on the scored split")
    cite_1, refuse, top = got["always_cite_1"], got["always_refuse"], got["bm25"]
    # always [1] ("never refuse"): [1] is gold for a2 and a4 only; answers: 4 answerable + 2 unanswerable
    assert cite_1["citation_accuracy"] == 0.5 and cite_1["citation_accuracy_multi"] == pytest.approx(1 / 3)
    assert cite_1["refusal_f1"] == 0.0 and cite_1["needless_refusal_rate"] == 0.0
    assert cite_1["answered_f1"] == pytest.approx(0.8)                  # P 4/6, R 1
    assert cite_1["f1_gr"] == pytest.approx(0.4)
    assert cite_1["answered_correctness"] == 0.5                        # a2, a4 hold the span; a1, a3 do not
    assert cite_1["refusal_auc"] == 0.5 and cite_1["threshold"] is None
    # always refuse: refusal P 2/6, R 1 -> 1/2; nothing answered
    assert refuse["citation_accuracy_multi"] == 0.0 and refuse["refusal_f1"] == pytest.approx(0.5)
    assert refuse["needless_refusal_rate"] == 1.0 and refuse["answered_f1"] == 0.0
    assert refuse["f1_gr"] == pytest.approx(0.25) and refuse["answered_correctness"] is None
    # BM25: right chunk everywhere, the threshold separates u1/u2 from the answerable rows
    for key in ("citation_accuracy", "citation_accuracy_multi", "refusal_f1", "answered_f1", "f1_gr",
                "answered_correctness", "refusal_auc", "gold_span_recall"):
        assert top[key] == 1.0, key
    assert top["needless_refusal_rate"] == 0.0
    tops = [s for _, s in top_chunks(chunk_scores(rows))]
    assert top["top_score_cut"] == pytest.approx((tops[5] + min(tops[:4])) / 2)   # the midpoint of the gap
    assert top["threshold"] == -top["top_score_cut"]
    assert top["threshold_split"] == "test" and top["threshold_note"] == "tuned on the scored split"
    assert top["threshold_objective"] == "f1_gr" and top["threshold_f1_gr"] == 1.0
    assert top["threshold_rows"] == 6


def test_threshold_comes_from_the_tuning_rows():
    rows = make_rows()
    # Tuned on a4 + u1 only: the cut is half of a4's top score (its own index over MENSA and BIB).
    tune = make_rows([ROWS_SPEC[3], ROWS_SPEC[4]])
    a4_top = top_chunks(chunk_scores(tune))[0][1]
    run = tuned_bm25(rows, tune)
    assert run.threshold == pytest.approx(-a4_top / 2)
    assert run.extra == {"top_score_cut": pytest.approx(a4_top / 2), "threshold_objective": "f1_gr",
                         "threshold_f1_gr": 1.0, "threshold_rows": 2, "max_needless_refusal": 0.15}
    # A tuning split without unanswerable rows: F1-GR is undefined, the tuner keeps its candidate that
    # refuses nothing there (one below the smallest top score).
    tune = make_rows(ROWS_SPEC[:4])
    tune_tops = [s for _, s in top_chunks(chunk_scores(tune))]
    run = tuned_bm25(tune, tune)
    assert run.extra["top_score_cut"] == pytest.approx(min(tune_tops) - 1) and REFUSAL not in run.predictions
    assert run.extra["threshold_f1_gr"] is None
