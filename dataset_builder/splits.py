"""Assign whole source documents (split units) to train/validation/test, never one to two splits.

Units are shuffled with the seed and each goes to the split furthest below its target share of
questions; so the shares come close to the configured fractions even with few, uneven documents.
"""

from __future__ import annotations

import random

from dataset_builder.schema import SPLITS


def assign_splits(unit_sizes: dict[str, int], fractions: dict[str, float], seed: int) -> dict[str, str]:
    units = sorted(unit_sizes)
    random.Random(f"{seed}:splits").shuffle(units)
    active = [s for s in SPLITS if fractions.get(s, 0) > 0]
    counts = dict.fromkeys(active, 0)
    assigned: dict[str, str] = {}
    total = 0
    for i, unit in enumerate(units):
        remaining = len(units) - i
        empty = [s for s in active if counts[s] == 0]
        if empty and remaining <= len(empty):
            split = min(empty, key=lambda s: -fractions[s])   # make sure every active split gets one
        else:
            total_after = total + unit_sizes[unit]
            split = max(active, key=lambda s: (fractions[s] * total_after - counts[s], fractions[s]))
        assigned[unit] = split
        counts[split] += unit_sizes[unit]
        total += unit_sizes[unit]
    return assigned


def split_questions(questions: list, docs: list, corpus, config) -> list[tuple[list, list[int]]]:
    """(questions, chunk indices) of each split in `SPLITS` order, split per unit (document group).

    Documents without questions still belong to a split (their chunks serve as negatives); questions
    about no document go, by a draw seeded per question, to a split that has chunks to show.
    """
    from collections import Counter

    unit_sizes = Counter(q.group for q in questions if q.doc_id is not None)
    for doc in docs:
        unit_sizes.setdefault(doc.group, 0)
    fractions = {"train": config.train_fraction, "validation": config.validation_fraction, "test": config.test_fraction}
    unit_split = assign_splits(dict(unit_sizes), fractions, config.seed)
    with_chunks = sorted({unit_split[corpus.docs[d].group] for d in corpus.chunk_doc}, key=SPLITS.index)
    weights = [fractions[s] for s in with_chunks]
    for q in questions:
        if q.doc_id is None and with_chunks:
            unit_split[q.group] = random.Random(f"{config.seed}:{q.id}:split").choices(with_chunks, weights)[0]
    chunk_split = [unit_split[corpus.docs[d].group] for d in corpus.chunk_doc]
    return [([q for q in questions if unit_split[q.group] == split],
             [c for c, s in enumerate(chunk_split) if s == split]) for split in SPLITS]
