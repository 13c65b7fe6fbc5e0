"""The adapter's decisions read from its probabilities (`answering.decision`), scored on a split.

`rag-de train` tunes the refusal threshold on the validation split with `tune_on_rows` and ships it with
the adapter; `rag-de evaluate` reports, beside free generation, what the model's probabilities decide:
the refusal AUC (threshold-free: does P(refusal) rank unanswerable rows above answerable ones?), and,
at the shipped threshold, refusal F1, needless refusals and F1-GR, and the constrained citation
accuracy (the most probable chunk number among the chunks in the prompt).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dataset_builder.contract import contexts_from_column, render_prompt_text
from answering.decision import (DECISION_MODES, EVIDENCE_SCALE, FUSION_MODEL_WEIGHT, MODEL_READING, Decision,
                                      DecisionThreshold, DecisionTokens, Fusion, decide, evidence_decisions,
                                      top_score)
from evaluation.baselines import chunk_scores
from evaluation.metrics import f1_gr, refusal_auc, refusal_prf
from evaluation.thresholds import MAX_NEEDLESS_REFUSAL, tune_threshold


def gold_number(row: Mapping[str, Any]) -> int | None:
    """1-based number of the gold chunk in the prompt, None for a refusal row."""
    if not row["answerable"]:
        return None
    return [c["id"] for c in row["contexts"]].index(row["gold_chunk_id"]) + 1


def decide_rows(model, tokenizer, rows: Sequence[Mapping[str, Any]], mode: str = "lead",
                progress: str | None = None) -> list[Decision]:
    """What the model reads for `mode` (`MODEL_READING`: lead or evidence) over dataset rows, prompts rendered
    by the contract; `apply_reading` turns evidence into `fused` decisions."""
    from tqdm.auto import tqdm

    if MODEL_READING[mode] == "evidence":   # one call for the split: its passes batch across rows
        return evidence_decisions(model, tokenizer, [(row["question"], contexts_from_column(row["contexts"]))
                                                     for row in rows], progress)
    tokens = DecisionTokens.from_tokenizer(tokenizer)
    out = []
    for row in tqdm(rows, desc=progress or "decisions", unit="ex", disable=progress is None):
        chunks = contexts_from_column(row["contexts"])
        prompt = render_prompt_text(tokenizer, row["question"], chunks)
        out.extend(decide(model, tokenizer, [prompt], [len(chunks)], tokens))
    return out


def decision_metrics(decisions: Sequence[Decision], rows: Sequence[Mapping[str, Any]],
                     threshold: float | None) -> dict[str, float | None]:
    """AUC and constrained citation always; refusal F1 / needless refusals / F1-GR when a threshold is given."""
    answerable = [bool(r["answerable"]) for r in rows]
    golds = [gold_number(r) for r in rows]
    multi = [d.citation == g for d, g, r in zip(decisions, golds, rows) if g is not None and len(r["contexts"]) >= 2]
    every = [d.citation == g for d, g in zip(decisions, golds) if g is not None]
    out: dict[str, float | None] = {
        "refusal_auc": refusal_auc([d.refusal_score for d in decisions], answerable),
        "constrained_citation_accuracy": sum(every) / len(every) if every else None,
        "constrained_citation_accuracy_multi": sum(multi) / len(multi) if multi else None,
        "refusal_threshold": threshold,
    }
    if threshold is not None:
        refused = [d.refuses(threshold) for d in decisions]
        n_answerable = sum(answerable)
        out.update({
            **refusal_prf(refused, answerable),
            "needless_refusal_rate": sum(r and a for r, a in zip(refused, answerable)) / n_answerable if n_answerable else None,
            "f1_gr": f1_gr(refused, answerable),
            # answered with the right chunk: the decided pipeline's citation accuracy on 2+ chunk rows
            "decided_citation_accuracy_multi": _share([not rf and d.citation == g for d, g, rf, r in
                                                      zip(decisions, golds, refused, rows)
                                                      if g is not None and len(r["contexts"]) >= 2]),
        })
    return out


def _share(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def apply_reading(model_decisions: Sequence[Decision], rows: Sequence[Mapping[str, Any]],
                  threshold: DecisionThreshold) -> list[Decision]:
    """The decisions of the threshold's mode from what the model read (`decide_rows`)."""
    if threshold.mode != "fused":
        return list(model_decisions)
    return [threshold.fusion.fuse(d, s) for d, s in zip(model_decisions, chunk_scores(rows))]


def tune_reading(model_decisions: Sequence[Decision], rows: Sequence[Mapping[str, Any]], mode: str, where: str,
                 fusion_weight: float = FUSION_MODEL_WEIGHT,
                 max_needless: float = MAX_NEEDLESS_REFUSAL) -> DecisionThreshold:
    """One mode's threshold on `rows`; for `fused`, the standardization is fitted on the same rows first."""
    if mode != "fused":
        return tune_decisions(model_decisions, rows, mode, where, max_needless)
    scores = chunk_scores(rows)   # BM25 of each prompt chunk (the baseline's index over the rows' chunks)
    fusion = Fusion.fit([d.refusal_score for d in model_decisions], [top_score(s) for s in scores], fusion_weight)
    tuned = tune_decisions([fusion.fuse(d, s) for d, s in zip(model_decisions, scores)], rows, mode, where,
                           max_needless)
    tuned.fusion = fusion
    return tuned


def tune_on_rows(model, tokenizer, rows: Sequence[Mapping[str, Any]], where: str,
                 modes: Sequence[str] = DECISION_MODES,
                 fusion_weight: float = FUSION_MODEL_WEIGHT,
                 max_needless: float = MAX_NEEDLESS_REFUSAL
                 ) -> tuple[DecisionThreshold, dict[str, DecisionThreshold], list[Decision]]:
    """Per mode, the refusal threshold maximizing F1-GR on `rows` (the validation split); the mode with the
    best mean of F1-GR and constrained citation accuracy (2+ chunks) there is the one shipped, returned with
    its decisions on `rows` (what its answer mode is then chosen on)."""
    read: dict[str, list[Decision]] = {}
    for mode in modes:
        reading = MODEL_READING[mode]
        if reading not in read:
            read[reading] = decide_rows(model, tokenizer, rows, reading, progress=f"{reading} decisions on {where}")
    tuned = {mode: tune_reading(read[MODEL_READING[mode]], rows, mode, where, fusion_weight, max_needless)
             for mode in modes}
    best = max(tuned.values(), key=lambda t: ((t.objective_value or 0) + (t.citation_accuracy_multi or 0)) / 2)
    return best, tuned, apply_reading(read[MODEL_READING[best.mode]], rows, best)


def tune_decisions(decisions: Sequence[Decision], rows: Sequence[Mapping[str, Any]], mode: str,
                   where: str, max_needless: float = MAX_NEEDLESS_REFUSAL) -> DecisionThreshold:
    """The refusal threshold maximizing F1-GR over one reading's decisions on `rows` (needless refusals at most
    `max_needless` there), with its figures there."""
    threshold, value = tune_threshold([d.refusal_score for d in decisions], [bool(r["answerable"]) for r in rows],
                                      max_needless)
    metrics = decision_metrics(decisions, rows, threshold)
    return DecisionThreshold(
        refusal_threshold=threshold, tuned_on=f"{where}, {len(rows)} rows", mode=mode, objective="f1_gr",
        objective_value=value, refusal_auc=metrics["refusal_auc"],
        citation_accuracy_multi=metrics["constrained_citation_accuracy_multi"], max_needless_refusal=max_needless,
        evidence_scale=EVIDENCE_SCALE if MODEL_READING[mode] == "evidence" else None)
