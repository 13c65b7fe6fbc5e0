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
    only_stopwords = BM25Index(["die der und", "Modul Statistik", ""])   # texts without a word still count
    assert only_stopwords.size == 3 and [d for d, _ in only_stopwords.search("Modul", 3)] == [1]
    assert index.search_many([], 3) == []


def _corpus(n: int) -> list[str]:
    """German-like texts with many exact score ties (few distinct words per text)."""
    words = ["Modul", "Prüfung", "Klausur", "Statistik", "Datenbanken", "Semester", "ECTS", "Projekt",
             "Übung", "Vorlesung", "Labor", "Bericht", "5", "10", "die", "der", "und"]
    return [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(3 + i % 5)) for i in range(n)]


def test_index_matrix_equals_bm25s_own_indexing():
    """Token ids made here give the matrix bm25s builds from `tokenize_de`'s tokens, bit for bit."""
    import bm25s
    import numpy as np

    texts = _corpus(60) + TEXTS
    index = BM25Index(iter(texts))                      # any iterable, read once
    reference = bm25s.BM25()
    reference.index(tokenize_de(texts), show_progress=False)
    ref = reference.scores
    assert index.size == len(texts) and set(index._vocab) == set(reference.vocab_dict) - {""}
    for stem, token in index._vocab.items():
        ours = slice(index._indptr[token], index._indptr[token + 1])
        theirs = slice(ref["indptr"][reference.vocab_dict[stem]], ref["indptr"][reference.vocab_dict[stem] + 1])
        assert np.array_equal(index._indices[ours], ref["indices"][theirs])
        assert np.array_equal(index._data[ours], ref["data"][theirs])


def test_search_is_exact_top_k_with_ties_by_position():
    """Against a brute-force ranking (all documents scored, sorted by score desc, position asc)."""
    import numpy as np

    texts = _corpus(300)
    index = BM25Index(texts)
    queries = ["Modul Prüfung", "Klausur Statistik ECTS", "5 10 Projekt Übung", "Labor", "Modul Modul Bericht",
               "Semester Vorlesung Datenbanken Klausur", "xyzzy", ""] * 12

    def brute(query: str, k: int) -> list[tuple[int, float]]:
        scores = np.zeros(index.size)
        for token in index._query_ids([query])[0]:
            for p in range(index._indptr[token], index._indptr[token + 1]):
                scores[index._indices[p]] += np.float64(index._data[p])
        order = sorted((-s, d) for d, s in enumerate(scores) if s > 0)[:k]
        return [(d, float(np.float32(-s))) for s, d in order]

    for k in (1, 5, 40):
        expected = [brute(q, k) for q in queries]
        assert index.search_many(queries, k) == expected
        assert index.search_many(queries, k, n_threads=2) == expected
        assert index.search_many(queries, k, n_threads=0) == expected
    assert any(len({s for _, s in hits}) < len(hits) for hits in expected)   # ties were exercised
