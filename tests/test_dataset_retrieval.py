"""German BM25: stemming and stopwords, batched search equals single search, edge cases."""

from __future__ import annotations

from dataset_builder.retrieval import BM25Index, tokenize_de

TEXTS = [
    "Die Prüfungen des Moduls Statistik sind Klausuren von 90 Minuten.",
    "Datenbanken behandelt relationale Modelle und SQL.",
    "Die Mensa öffnet um 11 Uhr.",
    "Das Modul Lineare Algebra hat 10 ECTS-Punkte.",
]


def test_tokenize_de_stems_and_drops_stopwords():
    tokens = tokenize_de("Die Prüfungen der Module")[0]
    assert "die" not in tokens and "der" not in tokens
    assert tokens == tokenize_de("Prüfung Modul")[0]


def test_search_finds_inflected_forms_and_ranks_best_first():
    index = BM25Index(TEXTS)
    hits = index.search("Wie lange dauert die Prüfung in Statistik?", k=3)
    assert hits[0][0] == 0
    assert all(a[1] >= b[1] for a, b in zip(hits, hits[1:]))
    assert index.search("Wie viele ECTS hat Lineare Algebra?", k=1)[0][0] == 3


def test_search_many_matches_search_and_threads_agree():
    index = BM25Index(TEXTS * 30)
    queries = ["Klausur Statistik", "SQL Datenbanken", "Mensa", "ECTS Algebra", "xyzzy"] * 20
    single = [index.search(q, 5) for q in queries]
    assert index.search_many(queries, 5) == single
    assert index.search_many(queries, 5, n_threads=2) == single


def test_edge_cases_empty_query_unknown_words_k_above_size_empty_index():
    index = BM25Index(TEXTS)
    assert index.search("", 3) == []
    assert index.search("Quantenchromodynamik", 3) == []
    assert len(index.search("Modul Mensa Datenbanken Prüfung", 50)) <= len(TEXTS)
    assert BM25Index([]).search_many(["Modul"], 3) == [[]]
    assert index.search_many([], 3) == []
