"""What `rag-de evaluate` leaves behind besides results.json: plots and a readable error analysis."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

from evaluation.metrics import HEADLINE, LABELS, LOWER_IS_BETTER
from rag_de.atomic import write_bytes, write_text

FAILURE_KINDS = {
    "wrong_citation": "Wrong citation (answerable, answered, first citation missing or not the gold chunk)",
    "missed_refusal": "Missed refusal (unanswerable, but the model answered)",
    "needless_refusal": "Needless refusal (answerable, but the model refused)",
    "hallucinated": "Hallucinated content (faithfulness proxy below the threshold)",
}


def _save_figure(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    write_bytes(path, buf.getvalue())


def comparison(metrics: dict[str, dict], baselines: dict[str, dict] | None,
               keys: Sequence[str] = HEADLINE, decided: dict | None = None) -> tuple[list[str], list[tuple[str, list]]]:
    """(column names, [(metric key, values)]) of base, adapter (free generation), the adapter's decided
    pipeline (when given: results.json "decided") and each baseline on `keys`.

    One table for the card, the error analysis and the plot, so a gain reads as a gain over a trivial rule.
    """
    from evaluation.baselines import LABELS as BASELINE_LABELS

    names = list(baselines or {})
    columns = ["Base", "Adapter"] + (["Adapter, decided"] if decided else []) + [BASELINE_LABELS.get(n, n) for n in names]
    rows = []
    for key in keys:
        row = metrics.get(key) or {}
        rows.append((key, [row.get("base"), row.get("adapter")] + ([decided.get(key)] if decided else [])
                     + [baselines[n].get(key) for n in names]))
    return columns, rows


def plot_metrics(metrics: dict[str, dict], path: Path, baselines: dict[str, dict] | None = None) -> Path:
    """Grouped bars, base vs adapter: 0..1 metrics on the left, eval loss on the right; with `baselines`,
    a second row compares the headline metrics with every trivial rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bounded = [k for k, v in metrics.items() if k not in ("eval_loss", "perplexity")
               and v.get("base") is not None and v.get("adapter") is not None]
    loss = [k for k in ("eval_loss",) if k in metrics and metrics[k].get("base") is not None]
    if baselines:
        fig, grid = plt.subplots(2, 2, figsize=(12, 9.6), gridspec_kw={"width_ratios": [5, 1]})
        axes = grid[0]
        _plot_comparison(grid[1][0], *comparison(metrics, baselines))
        grid[1][1].axis("off")                          # the legend's place: it would hide bars in the plot
        grid[1][1].legend(*grid[1][0].get_legend_handles_labels(), loc="center left", fontsize=8)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [5, 1]})
    for ax, keys, title in ((axes[0], bounded, "Answer quality (higher is better, except needless refusals)"),
                            (axes[1], loss, "Eval loss")):
        xs = range(len(keys))
        ax.bar([x - 0.2 for x in xs], [metrics[k]["base"] for k in keys], 0.4, label="base", color="#9aa5b1")
        ax.bar([x + 0.2 for x in xs], [metrics[k]["adapter"] for k in keys], 0.4, label="adapter", color="#2f6fde")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([LABELS.get(k, k) for k in keys], rotation=35, ha="right")
        ax.set_title(title, fontsize=10)
        if keys and keys[0] != "eval_loss":
            ax.set_ylim(0, 1.05)
    axes[0].legend()
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return path


def _plot_comparison(ax, columns: list[str], rows: list[tuple[str, list]]) -> None:
    """Headline metrics, one bar per system (a missing value: no bar)."""
    colors = ["#9aa5b1", "#2f6fde", "#e8a33d", "#c2410c", "#2b8a3e", "#7048e8"]
    width = 0.8 / max(1, len(columns))
    for j, name in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [v[j] if v[j] is not None else 0.0 for _, v in rows], width, label=name,
               color=colors[j % len(colors)])
    ax.set_xticks(list(range(len(rows))))
    ax.set_xticklabels([LABELS.get(k, k) + (" (lower is better)" if k in LOWER_IS_BETTER else "") for k, _ in rows],
                       rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("Headline metrics beside the trivial baselines (same rows, same scorer)", fontsize=10)


def plot_training_curves(trainer_state: dict, path: Path) -> Path | None:
    """Training loss and eval loss over optimizer steps from the Trainer's log history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = trainer_state.get("log_history", [])
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    if not train and not evals:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="training loss", color="#2f6fde")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", color="#d9480f")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("Training curves")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return path


def failures(records: Sequence[dict], variant: str, threshold: float) -> dict[str, list[dict]]:
    """Examples per failure kind for one variant, worst first."""
    out: dict[str, list[dict]] = {k: [] for k in FAILURE_KINDS}
    for r in records:
        s = r[variant]["scores"]
        if s["wrong_citation"]:
            out["wrong_citation"].append(r)
        if s["missed_refusal"]:
            out["missed_refusal"].append(r)
        if s["needless_refusal"]:
            out["needless_refusal"].append(r)
        if s["faithfulness"] is not None and s["faithfulness"] < threshold:
            out["hallucinated"].append(r)
    out["hallucinated"].sort(key=lambda r: r[variant]["scores"]["faithfulness"])
    for kind in ("wrong_citation", "missed_refusal", "needless_refusal"):
        out[kind].sort(key=lambda r: r[variant]["scores"]["token_f1"])
    return out


def _quote(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return (text[:limit] + " …") if len(text) > limit else text


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def comparison_markdown(metrics: dict[str, dict], baselines: dict[str, dict] | None) -> list[str]:
    """The headline comparison (base, adapter, every baseline) as Markdown table lines."""
    columns, rows = comparison(metrics, baselines)
    lines = ["| Metric | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for key, values in rows:
        label = LABELS.get(key, key) + (" (lower is better)" if key in LOWER_IS_BETTER else "")
        lines.append(f"| {label} | " + " | ".join(_cell(v) for v in values) + " |")
    return lines


def error_analysis(records: Sequence[dict], threshold: float, worst: int, metrics: dict[str, dict] | None = None,
                   baselines: dict[str, dict] | None = None) -> str:
    """Markdown: the headline metrics beside the baselines (when given), failure counts for base and adapter,
    then the adapter's worst examples per kind."""
    base, adapter = failures(records, "base", threshold), failures(records, "adapter", threshold)
    lines = ["# Error analysis", ""]
    if metrics is not None and baselines:
        bm25 = baselines.get("bm25", {})
        lines += ["## Headline metrics beside the trivial baselines", "",
                  *comparison_markdown(metrics, baselines), "",
                  f"BM25 refuses at a top score <= {_cell(bm25.get('top_score_cut'))}, tuned on split "
                  f"`{bm25.get('threshold_split')}`"
                  + (f" ({bm25['threshold_note']})" if bm25.get("threshold_note") else "") + ".", "",
                  "## Failures", ""]
    lines += [f"{len(records)} examples. A failure kind can hit one example several times over "
              f"(e.g. a wrong citation with low faithfulness). Hallucinated = faithfulness proxy < {threshold}.", "",
              "| Failure | Base | Adapter |", "|---|---:|---:|"]
    for kind, title in FAILURE_KINDS.items():
        lines.append(f"| {title} | {len(base[kind])} | {len(adapter[kind])} |")
    for kind, title in FAILURE_KINDS.items():
        lines += ["", f"## {title}", ""]
        if not adapter[kind]:
            lines.append("None for the adapter.")
            continue
        for r in adapter[kind][:worst]:
            s = r["adapter"]["scores"]
            lines += [f"### `{r['id']}`", "",
                      f"- Question: {_quote(r['question'])}",
                      f"- Gold ({'answerable, gold chunk [' + str(r['gold_chunk_number']) + ']' if r['answerable'] else 'unanswerable'}): "
                      f"{_quote(r['gold_answer'])}",
                      f"- Adapter: {_quote(r['adapter']['prediction'])}",
                      f"- Base: {_quote(r['base']['prediction'])}",
                      f"- Adapter cited {s['cited'] or 'nothing'}; token F1 {s['token_f1']:.2f}; faithfulness "
                      f"{'n/a' if s['faithfulness'] is None else format(s['faithfulness'], '.2f')}", ""]
    return "\n".join(lines) + "\n"


def side_by_side(base: dict[str, Any], adapter: dict[str, Any]) -> dict[str, dict]:
    """{metric: {base, adapter, delta, lower_is_better}}; delta = adapter - base."""
    out = {}
    for key in base:
        b, a = base[key], adapter.get(key)
        out[key] = {"base": b, "adapter": a, "delta": (a - b) if a is not None and b is not None else None,
                    "lower_is_better": key in LOWER_IS_BETTER}
    return out


def write_predictions(path: Path, records: Sequence[dict]) -> Path:
    return write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
