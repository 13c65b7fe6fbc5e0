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
