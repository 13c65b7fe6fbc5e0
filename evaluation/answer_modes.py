"""Which answer mode a run ships: every mode's answers on the tuning split, scored by answer quality.

The decision layer (refuse, or which chunk) is the same for `extracted` and `generated`; they differ in who
writes the sentence: the cited chunk's best-matching sentence, or the model after the forced lead. `free` is
the model's own generation, decisions included. Each mode is scored on the rows of the tuning split:

* answer quality over the answerable rows, the mean of gold-span recall, token F1 (against the gold answer)
  and faithfulness to the cited chunk (`evaluation.metrics`); a refused answerable row scores 0 on all three;
* F1-GR of the mode's refusals (equal for the two decided modes; free generation decides for itself).

The shipped mode has the best mean of the two; ties go to the mode earlier in `TIE_ORDER` (the extracted
sentence needs no generation). So a model whose own answers after the lead beat the extracted sentence
ships `generated`, and the demo then shows its text.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from answering.answer import ANSWER_MODES, extracted_answer, forced_lead, generated_answers
from answering.decision import Decision
from dataset_builder.contract import REFUSAL, contexts_from_column
from evaluation.metrics import f1_gr, score_example

QUALITY_FIGURES = ("gold_span_recall", "token_f1", "faithfulness")
TIE_ORDER = ("extracted", "generated", "free")


def decided_predictions(mode: str, model_fn: Callable, tokenizer, rows: Sequence[Mapping[str, Any]],
                        prompts: Sequence[str], decisions: Sequence[Decision], threshold: float,
                        max_new_tokens: int, batch_size: int = 8, progress: str | None = None) -> list[str]:
    """A decided mode's answers: the refusal where the decision refuses, else the `extracted` sentence or
    the `generated` text after the forced lead (also `extracted`'s answer for a chunk without sentences).
    `model_fn()` returns the model; the extracted mode calls it only on word-overlap ties."""
    if mode not in ("extracted", "generated"):
        raise ValueError(f"decided_predictions: {mode!r} is not a decided answer mode (extracted, generated)")
    out = [REFUSAL] * len(rows)
    to_generate = []
    for i, d in enumerate(decisions):
        if d.refuses(threshold):
            continue
        if mode == "extracted":
            chunks = contexts_from_column(rows[i]["contexts"])
            answer = extracted_answer(model_fn, tokenizer, rows[i]["question"], chunks, d.citation)
            if answer is not None:
                out[i] = answer
                continue
        to_generate.append(i)
    if to_generate:
        leads = [forced_lead(decisions[i].citation, contexts_from_column(rows[i]["contexts"])[decisions[i].citation - 1])
                 for i in to_generate]
        texts = generated_answers(model_fn(), tokenizer, [prompts[i] for i in to_generate], leads, max_new_tokens,
                                  batch_size, progress)
        for i, text in zip(to_generate, texts):
            out[i] = text
    return out


def mode_figures(predictions: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """One mode's figures on `rows`: the quality figures over answerable rows, F1-GR, and their mean (`score`)."""
    scores = [score_example(p, r) for p, r in zip(predictions, rows)]
    answerable = [bool(r["answerable"]) for r in rows]
    answered = [s for s, a in zip(scores, answerable) if a]
    out: dict[str, float | None] = {}
    for name in QUALITY_FIGURES:
        values = [0.0 if s.refused else float(getattr(s, name) or 0.0) for s in answered]
        out[name] = sum(values) / len(values) if values else None
    known = [out[n] for n in QUALITY_FIGURES if out[n] is not None]
    out["answer_quality"] = sum(known) / len(known) if known else None
    out["f1_gr"] = f1_gr([s.refused for s in scores], answerable)
    parts = [v for v in (out["answer_quality"], out["f1_gr"]) if v is not None]
    out["score"] = sum(parts) / len(parts) if parts else None
    out["rows"] = len(rows)
    return out


def choose_mode(figures: Mapping[str, Mapping[str, float | None]]) -> str:
    """The mode with the best `score`; ties go to the earlier mode in `TIE_ORDER`."""
    if not figures:
        raise ValueError("choose_mode: no answer mode was measured")
    unknown = set(figures) - set(ANSWER_MODES)
    if unknown:
        raise ValueError(f"choose_mode: unknown answer modes {sorted(unknown)}; expected {list(ANSWER_MODES)}")
    ranked = sorted(figures, key=lambda m: (-(figures[m]["score"] or 0.0), TIE_ORDER.index(m)))
    return ranked[0]


def measure_modes(modes: Sequence[str], model_fn: Callable, tokenizer, rows: Sequence[Mapping[str, Any]],
                  prompts: Sequence[str], decisions: Sequence[Decision], threshold: float, max_new_tokens: int,
                  batch_size: int = 8, free: Sequence[str] | None = None) -> tuple[str, dict[str, dict]]:
    """(the chosen mode, each mode's figures) on `rows`; `free`: the model's free generations, when the caller
    has them already (else they are generated here, for the `free` mode only)."""
    figures = {}
    for mode in modes:
        if mode == "free":
            if free is None:
                free = generated_answers(model_fn(), tokenizer, prompts, [""] * len(prompts), max_new_tokens,
                                         batch_size, "free answers")
            predictions = list(free)
        else:
            predictions = decided_predictions(mode, model_fn, tokenizer, rows, prompts, decisions, threshold,
                                              max_new_tokens, batch_size, progress=f"{mode} answers")
        figures[mode] = mode_figures(predictions, rows)
    return choose_mode(figures), figures
