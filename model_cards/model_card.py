"""The adapter's model card, rendered from a training run folder (never edited by hand).

Reads RUN_DIR/train_config.yaml, train_summary.json, trainer_state.json and eval/results.json (optional);
YAML metadata is built with `huggingface_hub.ModelCardData`, evaluation results as `EvalResult`s
(`model-index`), and the body from `templates/model_card.md`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from dataset_builder.contract import REFUSAL
from model_cards.safety import check_publishable
from rag_de.base_model import hub_id

TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"
TAGS = ["peft", "lora", "qlora", "trl", "sft", "rag", "german", "question-answering", "citations",
        "spaces-rag-de"]
EVAL_TASK = {"task_type": "text-generation", "task_name": "German grounded QA with citations and refusals"}
# Config sections/keys that describe where things go, not how the model was trained.
HIDDEN_CONFIG_KEYS = ("hub.", "tracking.", "training.output_dir", "training.device", "data.dataset",
                      "data.revision", "data.collator", "training.dataloader_num_workers", "model.name",
                      "model.revision")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(value: Any) -> bool:
    """An `org/name` id that is not an existing local folder."""
    return isinstance(value, str) and bool(HUB_ID_RE.match(value)) and not Path(value).exists()


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc}); rerun the step that writes it") from None


def read_run(run_dir: Path) -> dict:
    """The run folder's files as data; missing optional files read as empty."""
    run_dir = Path(run_dir)
    config_path, summary_path = run_dir / "train_config.yaml", run_dir / "train_summary.json"
    if not summary_path.exists() and not config_path.exists():
        raise FileNotFoundError(f"{run_dir} holds neither train_summary.json nor train_config.yaml; "
                                "pass the folder written by `rag-de train` (--run-dir)")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    return {"config": config or {}, "summary": _read_json(summary_path),
            "state": _read_json(run_dir / "trainer_state.json"),
            "results": _read_json(run_dir / "eval" / "results.json")}


def model_repo_id(run_dir: Path) -> str:
    run = read_run(run_dir)
    repo = run["summary"].get("hub_model_id") or (run["config"].get("hub") or {}).get("model_id")
    if not repo:
        raise ValueError(f"{run_dir}: no hub_model_id in train_summary.json; pass --repo org/NAME")
    return repo


def flatten(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def hyperparameters(config: dict) -> list[tuple[str, str]]:
    """The config as (dotted key, value) rows, without destinations, trackers and local paths."""
    rows = []
    for key, value in flatten(config):
        if any(key == h or key.startswith(h) for h in HIDDEN_CONFIG_KEYS):
            continue
        if isinstance(value, str) and (value.startswith(("/", "~")) or "\\" in value):
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        rows.append((key, text))
    return rows


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "n/a"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {sec} s"


def _dataset_id(*candidates: Any) -> str | None:
    return next((c for c in candidates if is_hub_id(c)), None)


def eval_results(results: dict, dataset_id: str | None) -> list:
    """One `EvalResult` per adapter metric (the base model's numbers stay in the body table)."""
    from huggingface_hub import EvalResult

    from evaluation.metrics import LABELS

    config = results.get("config", {})
    dataset = dataset_id or "spaces-rag-de (local build)"
    out = []
    for key, row in results.get("metrics", {}).items():
        value = row.get("adapter") if isinstance(row, dict) else None
        if value is None:
            continue
        out.append(EvalResult(
            **EVAL_TASK, dataset_type=dataset, dataset_name=dataset, dataset_split=config.get("split", "test"),
            metric_type=key, metric_name=LABELS.get(key, key), metric_value=value,
        ))
    return out


def _eval_rows(results: dict) -> list[dict]:
    from evaluation.metrics import LABELS, LOWER_IS_BETTER

    rows = []
    for key, row in results.get("metrics", {}).items():
        if not isinstance(row, dict):
            continue
        delta = row.get("delta")
        label = LABELS.get(key, key) + (" (lower is better)" if key in LOWER_IS_BETTER else "")
        rows.append({"label": label, "base": _fmt(row.get("base")),
                     "adapter": _fmt(row.get("adapter")),
                     "delta": "n/a" if delta is None else f"{delta:+.4f}"})
    return rows


def _baseline_table(results: dict) -> dict | None:
    """Base, adapter and every trivial baseline on the headline metrics (None without baselines)."""
    from evaluation.metrics import LABELS, LOWER_IS_BETTER
    from evaluation.report import comparison

    baselines = results.get("baselines")
    if not baselines or not isinstance(results.get("metrics"), dict):
        return None
    columns, rows = comparison(results["metrics"], baselines, decided=results.get("decided"))
    bm25 = baselines.get("bm25") or {}
    return {
        "columns": columns,
        "rows": [{"label": LABELS.get(k, k) + (" (lower is better)" if k in LOWER_IS_BETTER else ""),
                  "values": [_fmt(v, 3) for v in values]} for k, values in rows],
        "cut": _fmt(bm25.get("top_score_cut"), 3), "threshold_split": bm25.get("threshold_split"),
        "threshold_objective": LABELS.get(bm25.get("threshold_objective"), bm25.get("threshold_objective")),
        "threshold_note": bm25.get("threshold_note"),
    }


# The project's targets for the adapter's own free generation (what "it answers, cites and refuses" means in a
# card): below any of them the card says so and points to the decision file instead of claiming it.
OWN_ANSWER_TARGETS = {"gold_span_recall": 0.5, "refusal_f1": 0.5, "citation_accuracy_multi": 0.7}
ANSWER_MODE_LABELS = {"generated": "the adapter's own text after the forced lead", "extracted":
                      "the cited chunk's sentence sharing the most question words", "free": "free generation"}


def _retrieval_table(results: dict) -> dict | None:
    """The retrieval section of results.json (recall@k / MRR per retriever), None when it was not scored."""
    figures = results.get("retrieval")
    if not isinstance(figures, dict) or not figures.get("bm25"):
        return None
    names = {"bm25": "BM25", "dense": "dense", "hybrid": "hybrid (RRF)"}
    keys = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr")
    rows = [{"name": label, "values": [_fmt(figures[mode].get(k), 3) for k in keys]}
            for mode, label in names.items() if figures.get(mode)]
    return {"rows": rows, "queries": figures["bm25"].get("queries"), "chunks": figures.get("corpus_chunks"),
            "dense_model": f"`{figures['dense_model']}`" if figures.get("dense_model") else "a dense encoder (none here)"}


def _own_answers(results: dict) -> dict | None:
    """What the adapter's own free generation measured against the targets, base beside it, as card text."""
    metrics = results.get("metrics") or {}
    if not metrics:
        return None
    figures = {k: (metrics.get(k) or {}) for k in OWN_ANSWER_TARGETS}
    meets = all(isinstance(figures[k].get("adapter"), (int, float)) and figures[k]["adapter"] >= t
                for k, t in OWN_ANSWER_TARGETS.items())
    parts = ", ".join(f"{label} {_fmt(figures[k].get('adapter'), 2)} (base {_fmt(figures[k].get('base'), 2)})"
                      for k, label in (("gold_span_recall", "gold-span recall"), ("refusal_f1", "refusal F1"),
                                       ("citation_accuracy_multi", "citation accuracy on 2+ chunk prompts")))
    return {"meets": meets, "figures": parts}


def _answer_modes(results: dict) -> dict | None:
    """The shipped answer mode, and each mode's figures on the evaluated split."""
    modes = results.get("answer_modes") or {}
    if not modes.get("shipped"):
        return None
    rows = [{"mode": m, "label": ANSWER_MODE_LABELS.get(m, m), "span": _fmt(f.get("gold_span_recall"), 3),
             "f1": _fmt(f.get("token_f1"), 3), "faith": _fmt(f.get("faithfulness"), 3),
             "refusal_f1": _fmt(f.get("refusal_f1"), 3)} for m, f in (modes.get("test") or {}).items()]
    validation = modes.get("validation") or {}
    chosen = validation.get(modes["shipped"]) or {}
    return {"shipped": modes["shipped"], "label": ANSWER_MODE_LABELS.get(modes["shipped"], modes["shipped"]),
            "rows": rows, "validation_score": _fmt(chosen.get("score"), 3),
            "validation": ", ".join(f"{m} {_fmt(f.get('score'), 3)}" for m, f in validation.items())}


def _decision_note(results: dict, summary: dict) -> dict | None:
    """How the adapter decides (its shipped threshold) and what each reading measured on the test split."""
    threshold = results.get("decision_threshold") or summary.get("decision")
    if not threshold:
        return None
    decision = results.get("decision") or {}
    readings = []
    for name, label in (("base", "base, lead"), ("adapter", "adapter, lead"), ("base_evidence", "base, evidence"),
                        ("adapter_evidence", "adapter, evidence"), ("adapter_fused", "adapter, fused")):
        figures = decision.get(name)
        if figures:
            readings.append({"label": label, "auc": _fmt(figures.get("refusal_auc"), 3),
                             "citation": _fmt(figures.get("constrained_citation_accuracy_multi"), 3)})
    return {"mode": threshold.get("mode", "lead"), "threshold": _fmt(threshold.get("refusal_threshold"), 3),
            "tuned_on": threshold.get("tuned_on"), "objective": threshold.get("objective_value"),
            "objective_value": _fmt(threshold.get("objective_value"), 3), "readings": readings}


def render_model_card(run_dir: Path, hub_model_id: str | None = None, license: str = "apache-2.0") -> str:
    """The README.md of the adapter repo for the run in `run_dir`."""
    from huggingface_hub import ModelCard, ModelCardData

    run = read_run(Path(run_dir))
    config, summary, results = run["config"], run["summary"], run["results"]
    model_cfg = config.get("model") or {}
    base = hub_id(str(summary.get("base_model") or model_cfg.get("name") or ""))
    if not base or not is_hub_id(base):
        raise ValueError(f"{run_dir}: the base model {base!r} is not a Hub id; cards must name the Hub model "
                         "(train with --model.name org/NAME)")
    repo = hub_model_id or summary.get("hub_model_id") or (config.get("hub") or {}).get("model_id")
    repo = repo or f"{Path(run_dir).resolve().name}"
    dataset = _dataset_id(summary.get("dataset"), (config.get("data") or {}).get("dataset"))
    evaluated_on = (results.get("config") or {}).get("dataset")
    eval_dataset = _dataset_id(evaluated_on, dataset)
    eval_local = bool(results) and eval_dataset is not None and eval_dataset != evaluated_on
    quant = summary.get("quantization") or (config.get("quantization") or {}).get("kind", "nf4")
    quant_label = "full-precision" if quant == "none" else f"4-bit {str(quant).upper()} (bitsandbytes)"

    card_data = ModelCardData(
        base_model=base, library_name="peft", tags=TAGS, datasets=[dataset] if dataset else None,
        language="de", license=license, pipeline_tag="text-generation", model_name=repo,
        eval_results=eval_results(results, eval_dataset) or None,
    )
    counts = results.get("counts", {})
    rconf = results.get("config", {})
    state = run["state"]
    curves = (f"The loss curves are in `eval/training_curves.png` of the run "
              f"({len(state.get('log_history', []))} log entries).") if state.get("log_history") else ""
    peak = summary.get("peak_memory_gb")
    qcfg = config.get("quantization") or {}
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATE),
        model_title=repo.split("/")[-1], base_model=base, hub_model_id=repo, refusal=REFUSAL,
        quantization_label=quant_label, dataset_id=dataset, dataset_revision=summary.get("dataset_revision"),
        hardware=summary.get("hardware", "n/a"), train_time=_duration(summary.get("train_runtime_s")),
        global_step=_fmt(summary.get("global_step")), epochs=_fmt(summary.get("epochs"), 2),
        train_tokens=_fmt(summary.get("train_tokens")), tokens_per_s=_fmt(summary.get("tokens_per_s"), 1),
        peak_memory=f"{peak:.2f} GB" if isinstance(peak, (int, float)) else "n/a",
        train_loss=_fmt(summary.get("train_loss")), eval_loss=_fmt(summary.get("eval_loss")),
        hyperparameters=hyperparameters(config), curves_note=curves,
        snippet_quant_type=quant if quant in ("nf4", "fp4") else "nf4",
        snippet_double_quant=bool(qcfg.get("double_quant", True)),
        snippet_compute_dtype=qcfg.get("compute_dtype", "bfloat16"),
        eval_rows=_eval_rows(results), eval_split=rconf.get("split", "test"), baselines=_baseline_table(results), retrieval=_retrieval_table(results), decision=_decision_note(results, summary),
        own=_own_answers(results), answer_modes=_answer_modes(results),
        eval_dataset_label=(f"`{eval_dataset}`" + (" (a local build, before publishing)" if eval_local else ""))
        if eval_dataset else "the local dataset",
        eval_count=counts.get("examples", 0), eval_answerable=counts.get("answerable", 0),
        eval_unanswerable=counts.get("unanswerable", 0), eval_max_new_tokens=rconf.get("max_new_tokens"),
        eval_quantization=("4-bit " + str(rconf.get("quantization")).upper())
        if rconf.get("quantization") not in (None, "none") else "full precision",
    )
    text = str(card)
    return check_publishable(text, f"model card of {repo}")
