"""Chunking: headings kept, budget respected, stable ids, German sentence boundaries, spans map back."""

from __future__ import annotations

import pytest

from dataset_builder.chunking import (TokenCounter, chunk_document, chunk_spans, estimate_tokens,
                                      sentence_spans, span_text)

DOC = """# DS-101 Grundlagen der Programmierung

Einleitung ohne Abschnitt. Sie ist kurz.

## Inhalte
Behandelt werden Variablen, Funktionen und Listen. Ab der siebten Woche kommen Pakete hinzu.

Ein zweiter Absatz über NumPy, z. B. Arrays, und Dateien im 3. Semester. Er endet hier.

## Prüfung
- Klausur, 120 Minuten
- Bonus durch Übungsblätter
"""


def test_chunks_keep_heading_ids_and_metadata():
    chunks = chunk_document(DOC, "DS-101", "DS-101 Grundlagen", "DS-101.md", {"ects": 10}, max_tokens=60)
    assert [c.id for c in chunks] == [f"DS-101#{n}" for n in range(len(chunks))]
    assert all(c.title == "DS-101 Grundlagen" and c.source == "DS-101.md" and c.metadata == {"ects": 10}
               for c in chunks)
    pruefung = [c for c in chunks if "Klausur" in c.text]
    assert len(pruefung) == 1 and pruefung[0].text.startswith("## Prüfung\n- Klausur, 120 Minuten")
    assert all(c.text.startswith("## Inhalte\n") for c in chunks if "NumPy" in c.text or "Variablen" in c.text)
    # no chunk crosses a heading
    assert not any("Inhalte" in c.text and "Prüfung" in c.text for c in chunks)
    # same input -> same ids and texts
    assert chunk_document(DOC, "DS-101", max_tokens=60) == chunk_document(DOC, "DS-101", max_tokens=60)


@pytest.mark.parametrize("budget", [24, 40, 80, 400])
def test_budget_is_respected_and_text_is_covered(budget):
    text = " ".join(f"Satz Nummer {i} beschreibt das Modul ausführlich und genau." for i in range(40))
    spans = chunk_spans(text, max_tokens=budget)
    assert all(estimate_tokens(span_text(text, s)) <= budget for s in spans)
    # every word of the document lands in exactly one chunk, in order
    assert " ".join(text[s.start:s.end] for s in spans).split() == text.split()


def test_long_paragraph_splits_at_sentences_not_inside():
    text = "Der erste Satz ist lang genug, um zu zählen. " * 3 + "Der letzte Satz endet hier."
    spans = chunk_spans(text, max_tokens=40)
    assert len(spans) > 1
    assert all(text[s.start:s.end].endswith(".") for s in spans)


def test_german_sentence_boundaries_skip_abbreviations_and_ordinals():
    text = "Er kam am 3. Mai an. Dann ging er, d. h. er lief, zu Dr. Müller. Wer? Ja!"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Er kam am 3. Mai an.", "Dann ging er, d. h. er lief, zu Dr. Müller.", "Wer?", "Ja!"]


def test_token_estimate_is_calibrated_and_a_tokenizer_can_count():
    assert estimate_tokens("Das Modul hat fünf ECTS.") == 14   # 5 words * 2.45 + 1 mark -> ceil
    counter = TokenCounter(tokenizer=lambda text, add_special_tokens=False: {"input_ids": text.split()})
    assert counter("a b c") == 3
