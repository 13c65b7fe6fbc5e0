"""`rag-de evaluate`: the same prompts through the base model and base + adapter, then metrics and reports.

Order matters: every input check (adapter vs base, dataset columns, non-empty split, chat template)
happens before the model loads; generations are cached per example, so a rerun only generates what is
missing (and loads no model at all when nothing is).
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from dataset_builder.contract import REFUSAL, contexts_from_column, render_prompt_text
from answering.decision import FUSION_MODEL_WEIGHT, MODEL_READING, Decision, load_threshold
from evaluation.cache import ResultCache, example_key, settings_hash
from evaluation.config import EvalConfig
from evaluation.data import EvalInputError, load_split
from evaluation.decisions import apply_reading, decide_rows, decision_metrics
from evaluation.answer_modes import mode_figures
from evaluation.metrics import aggregate, score_example
from rag_de.atomic import write_json
from rag_de.base_model import hub_id

__all__ = ["EvalInputError", "evaluate"]
VARIANTS = ("base", "adapter")


def public_name(value: str) -> str:
    """Hub ids as they are; local folders as `local:<folder name>` (results.json may be published)."""
    name = hub_id(value)
    if Path(name).exists():
        return f"local:{Path(name).resolve().name}"
    return name


def read_adapter_config(adapter: str, revision: str | None):
    from peft import PeftConfig

    try:
        return PeftConfig.from_pretrained(adapter, revision=revision)
    except Exception as exc:  # noqa: BLE001 - peft raises ValueError/OSError/HTTP errors alike
        raise EvalInputError(f"adapter {adapter}: cannot read adapter_config.json ({exc}); pass a PEFT "
                             "adapter folder or Hub id (--adapter)") from None


def check_adapter_base(adapter: str, adapter_base: str | None, base: str) -> None:
    if not adapter_base:
        raise EvalInputError(f"adapter {adapter}: adapter_config.json has no base_model_name_or_path")
    if hub_id(adapter_base) != hub_id(base) and not (
            Path(adapter_base).exists() and Path(base).exists()
            and Path(adapter_base).resolve() == Path(base).resolve()):
        raise EvalInputError(
            f"adapter {adapter} was trained on {hub_id(adapter_base)!r} (adapter_config.json "
            f"base_model_name_or_path) but --base is {hub_id(base)!r}; pass --base {hub_id(adapter_base)}")


def adapter_fingerprint(adapter: str, revision: str | None) -> str:
    """Local adapters: hash of their weights (a retrained adapter in the same folder gets new results)."""
    folder = Path(adapter)
    if folder.is_dir():
        digest = hashlib.sha256()
        for f in sorted(folder.glob("adapter_model.*")) + [folder / "adapter_config.json"]:
            if f.exists():
                digest.update(f.read_bytes())
        return "sha256:" + digest.hexdigest()[:16]
    return f"{adapter}@{revision or 'main'}"


def load_tokenizer_for(config: EvalConfig):
    """The adapter's tokenizer when it ships one (training may add a pad token), else the base's."""
    from rag_de.modeling import load_tokenizer

    try:
        return load_tokenizer(config.adapter, revision=config.adapter_revision)
    except (OSError, ValueError, TypeError):
        return load_tokenizer(config.base)


def find_run_dir(config: EvalConfig) -> Path | None:
    candidates = [config.run_dir] if config.run_dir else []
    candidates += [str(Path(config.out).parent)]
    if Path(config.adapter).is_dir():
        candidates.append(str(Path(config.adapter).parent))
    for c in candidates:
        if c and (Path(c) / "trainer_state.json").exists():
            return Path(c)
    return None


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Run the evaluation described by `config`; returns (and writes) the results dict."""
    from tqdm.auto import tqdm

    if not config.adapter:
        raise EvalInputError("--adapter is required (a PEFT adapter folder or Hub id)")
    if config.batch_size < 1 or config.max_new_tokens < 1:
        raise EvalInputError("--batch-size and --max-new-tokens must be at least 1")
    out = Path(config.out)

    # 1. Every input check, before any model loads.
    adapter_cfg = read_adapter_config(config.adapter, config.adapter_revision)
    check_adapter_base(config.adapter, adapter_cfg.base_model_name_or_path, config.base)
    rows = load_split(config.dataset, config.split, config.dataset_revision)
    if config.limit:
        rows = rows[: config.limit]
    encoder = None
    if config.retrieval and config.dense_model:   # a named encoder that does not load fails here, not late
        from demo_space.dense import PREFIXES, DenseEncoder

        encoder = DenseEncoder(config.dense_model, *PREFIXES[config.dense_prefixes])
    tokenizer = load_tokenizer_for(config)
    try:
        prompts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in rows]
    except ValueError as exc:
        raise EvalInputError(str(exc)) from None

    # 2. What is already cached.
    from rag_de.modeling import resolve_compute_dtype

    compute_dtype = resolve_compute_dtype(config.compute_dtype, config.device)
    config = replace(config, compute_dtype=compute_dtype)   # results.json records what actually ran
    common = {"base": hub_id(config.base), "quantization": config.quantization, "dtype": config.dtype,
              "compute_dtype": compute_dtype, "max_new_tokens": config.max_new_tokens, "greedy": True}
    digests = {"base": settings_hash(common),
               "adapter": settings_hash({**common, "adapter": adapter_fingerprint(config.adapter, config.adapter_revision)})}
    cache = ResultCache(out / "generations.jsonl")
    # generation: free text; decision / evidence: what the model reads for the decision modes
    # (answering/decision.py: `lead`; `evidence`, which `fused` builds on); loss: teacher-forced answer NLL
    try:
        shipped = load_threshold(config.adapter, config.adapter_revision)
    except ValueError as exc:
        raise EvalInputError(f"adapter {config.adapter}: {exc}") from None
    readings = {v: [m for m in READING_KIND
                    if (m in config.readings and (v == "adapter" or config.base_readings))
                    or (v == "adapter" and shipped is not None and MODEL_READING[shipped.mode] == m)]
                for v in VARIANTS}
    kinds = {v: ["generation", *(READING_KIND[m] for m in readings[v])] + (["loss"] if config.compute_loss else [])
             for v in VARIANTS}
    keys = {(v, k): [example_key(digests[v], k, r["id"], p) for r, p in zip(rows, prompts)]
            for v in VARIANTS for k in kinds[v]}
    pending = {vk: [i for i, key in enumerate(ks) if key not in cache] for vk, ks in keys.items()}
    stats = {v: {"cache_hits": sum(len(keys[(v, k)]) - len(pending[(v, k)]) for k in kinds[v]),
                 "generated": 0, "generation_seconds": 0.0, "decision_seconds": 0.0, "evidence_seconds": 0.0,
                 "loss_seconds": 0.0} for v in VARIANTS}

    # 3. Generate (and score loss) only what is missing.
    model = LazyModel(config, tokenizer)
    if any(pending.values()):
        from answering.generate import generate_batch
        from evaluation.inference import answer_nll

        for variant in VARIANTS:
            for kind in kinds[variant]:
                todo = sorted(pending[(variant, kind)], key=lambda i: len(prompts[i]))  # less padding
                if not todo:
                    continue
                started = time.perf_counter()
                bar = tqdm(total=len(todo), desc=f"{variant}: {kind}", unit="ex")
                for start in range(0, len(todo), config.batch_size):
                    batch = todo[start: start + config.batch_size]
                    context = model.get().disable_adapter() if variant == "base" else nullcontext()
                    with context:
                        if kind == "generation":
                            values = generate_batch(model.get(), tokenizer, [prompts[i] for i in batch],
                                                    config.max_new_tokens)
                            records = [{"prediction": v} for v in values]
                        elif kind in KIND_MODE:   # one of the two decision readings
                            values = decide_rows(model.get(), tokenizer, [rows[i] for i in batch], KIND_MODE[kind])
                            records = [{"refusal_score": d.refusal_score, "citation_scores": d.citation_scores}
                                       for d in values]
                        else:
                            values = answer_nll(model.get(), tokenizer, [prompts[i] for i in batch],
                                                [rows[i]["answer"] for i in batch])
                            records = [{"nll": nll, "tokens": n} for nll, n in values]
                    cache.append([{"key": keys[(variant, kind)][i], "id": rows[i]["id"], "variant": variant,
                                   "kind": kind, **rec} for i, rec in zip(batch, records)])
                    bar.update(len(batch))
                bar.close()
                if kind == "generation":
                    stats[variant]["generated"] += len(todo)
                stats[variant][f"{kind}_seconds"] += round(time.perf_counter() - started, 2)

    # 4. Decided generation: the adapter's own probabilities decide (threshold shipped with the adapter,
    #    citation among the prompt's chunks); each decided answer mode then writes the answer (the cited chunk's
    #    sentence, or the adapter's text after the forced lead), and the shipped mode is the `decided` pipeline
    #    (free: the adapter's free generation). With --threshold validation the threshold is re-tuned first.
    threshold = shipped
    decided = decisions = None
    by_mode: dict[str, list[str]] = {}
    if threshold is not None:
        if config.threshold == "validation":
            threshold = retune_threshold(config, threshold, digests["adapter"], cache, tokenizer, model)
        read = [decision_from(cache.records[k]) for k in keys[("adapter", MODE_KIND[threshold.mode])]]
        decisions = apply_reading(read, rows, threshold)
        for mode in dict.fromkeys([*config.answer_modes, threshold.answer_mode]):
            if mode == "free":
                by_mode[mode] = [cache.records[k]["prediction"] for k in keys[("adapter", "generation")]]
            else:
                by_mode[mode] = decided_generations(config, prompts, rows, decisions, threshold, digests["adapter"],
                                                    cache, tokenizer, model, mode)
        decided = by_mode[threshold.answer_mode]

    # 5. Score, aggregate, report.
    return write_reports(config, rows, cache, keys, stats, kinds, threshold, decided, decisions, by_mode, encoder)


def retrieval_figures(config: EvalConfig, rows, encoder=None) -> dict[str, Any] | None:
    """evaluation.retrieval_eval over the split's rows, or None with --retrieval false."""
    if not config.retrieval:
        return None
    from evaluation.retrieval_eval import split_retrieval

    figures = split_retrieval(rows, encoder)
    if figures.get("dense_model"):
        figures["dense_model"] = public_name(figures["dense_model"])
    bm25 = figures["bm25"] or {}
    print(f"[evaluate] retrieval over {figures['corpus_chunks']} chunks: BM25 recall@1 "
          f"{bm25.get('recall@1')}, recall@5 {bm25.get('recall@5')}, MRR {bm25.get('mrr')}", flush=True)
    return figures


READING_KIND = {"lead": "decision", "evidence": "evidence"}                   # model reading -> its cache kind
KIND_MODE = {kind: reading for reading, kind in READING_KIND.items()}          # cache kind -> model reading
MODE_KIND = {mode: READING_KIND[reading] for mode, reading in MODEL_READING.items()}   # decision mode -> cache kind


class LazyModel:
    """Base + adapter, loaded on first use: a fully cached rerun loads no model at all."""

    def __init__(self, config: EvalConfig, tokenizer):
        self.config, self.tokenizer, self.model = config, tokenizer, None

    def get(self):
        if self.model is None:
            from rag_de.modeling import LoadQuantizationConfig, dequantize_4bit_on_cpu, load_adapter, load_causal_lm

            config = self.config
            quant = LoadQuantizationConfig(kind=config.quantization, compute_dtype=config.compute_dtype)
            model = load_causal_lm(config.base, quant, dtype=config.dtype, device=config.device,
                                   tokenizer=self.tokenizer)
            self.model = load_adapter(model, config.adapter, revision=config.adapter_revision).eval()
            if config.dequantize_on_cpu:
                dequantize_4bit_on_cpu(self.model)
        return self.model


def retune_threshold(config: EvalConfig, shipped, digest, cache, tokenizer, model: LazyModel):
    """The shipped reading's refusal threshold re-tuned on this dataset's validation split (per-example
    cached), by the rule the BM25 baseline is tuned with; `tuned_on` says so."""
    from evaluation.baselines import tuning_rows
    from evaluation.decisions import tune_reading

    rows, split, note = tuning_rows(config.dataset, config.split, config.dataset_revision, [])
    if note:
        raise EvalInputError(f"--threshold validation: {note.split(':')[0]}; evaluate another split or keep "
                             "--threshold shipped")
    kind = MODE_KIND[shipped.mode]
    prompts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in rows]
    keys = [example_key(digest, kind, r["id"], p) for r, p in zip(rows, prompts)]
    todo = [i for i, k in enumerate(keys) if k not in cache]
    if todo:
        values = decide_rows(model.get(), tokenizer, [rows[i] for i in todo], MODEL_READING[shipped.mode],
                             progress=f"adapter: {MODEL_READING[shipped.mode]} decisions on {split}")
        cache.append([{"key": keys[i], "id": rows[i]["id"], "variant": "adapter", "kind": kind,
                       "refusal_score": d.refusal_score, "citation_scores": d.citation_scores}
                      for i, d in zip(todo, values)])
    decisions = [decision_from(cache.records[k]) for k in keys]
    where = f"{public_name(config.dataset)} [{split}] (re-tuned at evaluation; shipped: {shipped.tuned_on})"
    weight = shipped.fusion.model_weight if shipped.fusion is not None else FUSION_MODEL_WEIGHT
    return tune_reading(decisions, rows, shipped.mode, where, weight, config.max_needless_refusal)


def decision_from(record: dict) -> Decision:
    return Decision(record["refusal_score"], list(record["citation_scores"]))


def decided_generations(config: EvalConfig, prompts, rows, decisions, threshold, digest, cache, tokenizer,
                        model: LazyModel, mode: str) -> list[str]:
    """Predictions of the decided pipeline in one answer mode (`evaluation.answer_modes.decided_predictions`):
    the refusal where the score clears the threshold; else, citing n = the most probable chunk in the prompt,
    the answer the mode writes. Cached per row and cited chunk, so a rerun generates nothing."""
    from evaluation.answer_modes import decided_predictions

    forced = {i: d.citation for i, d in enumerate(decisions) if not d.refuses(threshold.refusal_threshold)}
    keys = {i: example_key(digest, f"decided-{mode}", rows[i]["id"], f"{prompts[i]}\n[cite {n}]")
            for i, n in forced.items()}
    todo = sorted((i for i in forced if keys[i] not in cache), key=lambda i: len(prompts[i]))
    if todo:
        started = time.perf_counter()
        values = decided_predictions(mode, model.get, tokenizer, [rows[i] for i in todo], [prompts[i] for i in todo],
                                     [decisions[i] for i in todo], threshold.refusal_threshold,
                                     config.max_new_tokens, config.batch_size,
                                     progress=f"adapter: {mode} answers")
        cache.append([{"key": keys[i], "id": rows[i]["id"], "variant": "adapter", "kind": f"decided-{mode}",
                       "prediction": v} for i, v in zip(todo, values)])
        print(f"[evaluate] {mode} answers for {len(todo)} rows in {time.perf_counter() - started:.1f} s", flush=True)
    return [cache.records[keys[i]]["prediction"] if i in forced else REFUSAL for i in range(len(rows))]


def write_reports(config: EvalConfig, rows, cache: ResultCache, keys, stats, kinds, threshold=None,
                  decided=None, shipped_decisions=None, by_mode=None, encoder=None) -> dict[str, Any]:
    """results.json, predictions, plots and error analysis; `shipped_decisions`: the adapter's decisions in
    the threshold's mode, as the decided pipeline used them."""
    from evaluation.report import error_analysis, plot_metrics, plot_training_curves, side_by_side, write_predictions

    out = Path(config.out)
    records = []
    aggregated = {}
    decision: dict[str, dict] = {}
    for variant in VARIANTS:
        for mode, kind in MODE_KIND.items():
            shipped = threshold is not None and variant == "adapter" and threshold.mode == mode
            if (variant, kind) not in keys or (mode == "fused" and not shipped):   # fused: needs its fit
                continue
            decisions = (shipped_decisions if shipped
                         else [decision_from(cache.records[k]) for k in keys[(variant, kind)]])
            name = variant if mode == "lead" else f"{variant}_{mode}"
            decision[name] = decision_metrics(decisions, rows, threshold.refusal_threshold if shipped else None)
    for variant in VARIANTS:
        preds = [cache.records[k]["prediction"] for k in keys[(variant, "generation")]]
        scores = [score_example(p, r) for p, r in zip(preds, rows)]
        losses = None
        if "loss" in kinds[variant]:
            losses = [(cache.records[k]["nll"], cache.records[k]["tokens"]) for k in keys[(variant, "loss")]]
        aggregated[variant] = aggregate(scores, rows, preds, losses)
        for i, (row, pred, score) in enumerate(zip(rows, preds, scores)):
            if variant == "base":
                ids = [c["id"] for c in row["contexts"]]
                records.append({
                    "id": row["id"], "question": row["question"], "answerable": bool(row["answerable"]),
                    "gold_chunk_id": row["gold_chunk_id"],
                    "gold_chunk_number": ids.index(row["gold_chunk_id"]) + 1 if row["answerable"] else None,
                    "gold_answer": row["answer"], "gold_span": row["gold_span"]})
            entry = {"prediction": pred, "scores": score.to_dict()}
            if losses:
                entry["answer_nll"], entry["answer_tokens"] = losses[i]
            records[i][variant] = entry
    if decided:
        for record, row, pred in zip(records, rows, decided):
            record["adapter_decided"] = {"prediction": pred, "scores": score_example(pred, row).to_dict()}
        for mode, preds in (by_mode or {}).items():
            for record, row, pred in zip(records, rows, preds if mode != "free" else ()):   # free: `adapter`
                record[f"adapter_{mode}"] = {"prediction": pred, "scores": score_example(pred, row).to_dict()}

    answerable = sum(bool(r["answerable"]) for r in rows)
    metrics = side_by_side(aggregated["base"], aggregated["adapter"])
    # Trivial rules on the same rows, scored the same way (evaluation/baselines.py); no model needed.
    from evaluation.baselines import evaluate_baselines, tuning_rows

    baselines = evaluate_baselines(rows, *tuning_rows(config.dataset, config.split, config.dataset_revision, rows),
                                   max_needless=config.max_needless_refusal)
    public_config = {**asdict(config), "base": public_name(config.base), "adapter": public_name(config.adapter),
                     "dataset": public_name(config.dataset), "out": None, "run_dir": None}
    results = {
        "config": public_config,
        "counts": {"examples": len(rows), "answerable": answerable, "unanswerable": len(rows) - answerable},
        "metrics": metrics,
        "baselines": baselines,
        # What the models' own probabilities decide (answering/decision.py): refusal AUC, constrained
        # citation, and at the adapter's shipped threshold the decided refusal figures.
        "decision": decision,
        "decision_threshold": asdict(threshold) if threshold is not None else None,
        # Free generation of the adapter vs its decided generation (threshold + constrained citation).
        "decided": aggregate([score_example(p, r) for p, r in zip(decided, rows)], rows, decided) if decided else None,
        # The adapter's answers per answer mode on this split (the decided modes share the decisions above;
        # free = its free generation), with the figures the mode was chosen by on validation.
        "answer_modes": {
            "shipped": threshold.answer_mode if threshold is not None else None,
            "validation": threshold.answer_modes if threshold is not None else None,
            "test": {mode: {**aggregate([score_example(p, r) for p, r in zip(preds, rows)], rows, preds),
                            **{k: v for k, v in mode_figures(preds, rows).items() if k in ("answer_quality", "score")}}
                     for mode, preds in (by_mode or {}).items()},
        },
        # The demo's retriever on this split's contexts: recall@k / MRR of BM25, dense, hybrid (RRF).
        "retrieval": retrieval_figures(config, rows, encoder),
        "cache": stats,
        "predictions_file": "predictions.jsonl",
        "plots": [],
        "error_analysis_file": "error_analysis.md",
    }
    write_predictions(out / "predictions.jsonl", records)
    plot_metrics(metrics, out / "metrics.png", baselines)
    results["plots"].append("metrics.png")
    run_dir = find_run_dir(config)
    if run_dir is not None:
        state = json.loads((run_dir / "trainer_state.json").read_text(encoding="utf-8"))
        if plot_training_curves(state, out / "training_curves.png"):
            results["plots"].append("training_curves.png")
    from rag_de.atomic import write_text

    write_text(out / "error_analysis.md", error_analysis(records, config.hallucination_threshold, config.worst_examples,
                                                            metrics, baselines))
    write_json(out / "results.json", results)
    return results
