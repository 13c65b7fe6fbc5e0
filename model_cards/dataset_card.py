"""The dataset card (README.md of the Hub dataset), rendered from a build folder's stats.json.

The prompt contract is rendered from `dataset_builder.contract`, never re-typed; the license is
inherited from the sources (share-alike wins); sizes and construction figures come from stats.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from dataset_builder.contract import QUESTION_PREFIX, REFUSAL, SYSTEM_PROMPT
from model_cards.safety import check_publishable

TEMPLATE = Path(__file__).resolve().parent / "templates" / "dataset_card.md"
SPLITS = ("train", "validation", "test")
TAGS = ["rag", "retrieval-augmented-generation", "german", "citations", "refusal", "chat",
        "spaces-rag-de"]
SOURCE_TEXT = {
    "xquad-de": "[XQuAD](https://github.com/google-deepmind/xquad) German (Artetxe, Ruder, Yogatama, 2019): "
                "human-translated SQuAD v1.1 paragraphs from Wikipedia, CC BY-SA 4.0.",
    "germanquad": "[GermanQuAD](https://huggingface.co/datasets/deepset/germanquad) (deepset, 2021): German "
                  "Wikipedia paragraphs with human-written questions; Wikipedia text is CC BY-SA.",
    "sample-modules": "The spaces-rag-de sample data: the module catalog of a fictional German study "
                      "program with hand-written questions, written for the project and released as CC0 1.0.",
}
LICENSE_LABELS = {"cc-by-sa-4.0": "CC BY-SA 4.0", "cc0-1.0": "CC0 1.0", "cc-by-4.0": "CC BY 4.0"}


def inherited_license(licenses: list[str]) -> tuple[str, str]:
    """(Hub license id, explanation) for the combined data: the most restrictive source wins."""
    found = {lic for lic in licenses if lic and lic != "unknown"}
    if "unknown" in licenses or None in licenses:
        return "other", ("At least one source has no declared license (`rag-de build --license ...`); "
                         "check its terms before using or sharing this dataset.")
    if "cc-by-sa-4.0" in found:
        return "cc-by-sa-4.0", ("Share-alike: the Wikipedia-derived sources are CC BY-SA 4.0, so the whole "
                                "dataset is, and derived datasets must keep that license and attribution.")
    if found == {"cc0-1.0"}:
        return "cc0-1.0", "All sources are public-domain dedicated (CC0 1.0)."
    if len(found) == 1:
        lic = next(iter(found))
        return lic, f"Inherited from the only source license ({lic})."
    return "other", f"Mixed source licenses ({', '.join(sorted(found))}); each source's terms apply."


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def _source_line(source: dict) -> str:
    origin = source.get("origin", "")
    name = Path(str(source.get("input", ""))).name if source.get("kind") != "squad-hub" else source.get("input")
    text = SOURCE_TEXT.get(origin, f"`{name}` ({source.get('kind')}, license: {source.get('license') or 'not declared'}).")
    return f"{text} {source.get('questions', 0)} questions, {source.get('documents', 0)} documents (origin `{origin}`)."


def _generated_label(stats: dict) -> str:
    """The card's paragraph on `--documents` inputs: files read/skipped by reason, questions kept/rejected."""
    docs, q = stats.get("documents"), stats.get("questions")
    if not docs or not q:
        return ""
    listing = lambda counts: ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())  # noqa: E731
    model = q.get("generator", {}).get("model") or "an LLM"
    rate = q.get("span_check_pass_rate")
    return (f"**Documents and generated questions.** {docs['read']} of {docs['files']} files were read "
            f"({listing(docs['formats'])}; PDFs by page, other formats by heading section), "
            f"{docs['skipped_total']} skipped" + (f" ({listing(docs['skipped'])})" if docs["skipped"] else "")
            + f". `{model}` wrote questions for {q['chunks']} chunks: {q['proposed']} proposed, {q['kept']} "
            f"kept ({q['kept_answerable']} answerable, {q['kept_unanswerable']} unanswerable), "
            f"{q['rejected_total']} rejected" + (f" ({listing(q['rejected'])})" if q["rejected"] else "")
            + ". An answerable question is kept only when its answer occurs verbatim in its chunk"
            + (f" (the span check passed {100 * rate:.0f} % of them)" if rate is not None else "")
            + ", it passes the rule filter (length, question mark, no copied chunk text) and is not a duplicate.")


def _example(data_dir: Path) -> tuple[str, str, str]:
    import pyarrow.parquet as pq

    for split in ("train", "validation", "test"):
        path = data_dir / f"{split}.parquet"
        if path.exists() and pq.ParquetFile(path).metadata.num_rows:
            table = pq.read_table(path, columns=["messages", "answerable"]).slice(0, 64).to_pylist()
            row = next((r for r in table if r["answerable"]), table[0])
            return split, row["messages"][1]["content"], row["messages"][-1]["content"]
    return "train", "", ""


def render_dataset_card(stats_or_dir: str | Path | dict, repo_id: str, data_dir: str | Path | None = None) -> str:
    """README.md for a built dataset: pass the `rag-de build --out` folder, or its stats.json as a dict
    (then `data_dir`, if given, supplies the example conversation shown in the card)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    if isinstance(stats_or_dir, dict):
        stats = stats_or_dir
    else:
        data_dir = Path(stats_or_dir)
        stats_path = data_dir / "stats.json"
        if not stats_path.exists():
            raise FileNotFoundError(f"{stats_path} is missing: pass the folder written by `rag-de build --out`")
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    data_dir = Path(data_dir) if data_dir is not None else None
    splits = [s for s in SPLITS if s in stats["splits"] and stats["splits"][s]["examples"]
              and (data_dir is None or (data_dir / f"{s}.parquet").exists())]
    license_id, license_note = inherited_license(stats.get("licenses", []))
    origins = stats.get("origins", [])
    total = stats["totals"]["examples"]
    config = stats.get("config", {})
    pretty = "spaces-rag-de: German RAG answers with citations and refusals"
    card_data = DatasetCardData(
        language="de", license=license_id, task_categories=["question-answering", "text-generation"],
        size_categories=size_category(total), pretty_name=pretty, tags=TAGS,
        source_datasets=[o for o in ("xquad", "deepset/germanquad") if any(o.split("/")[-1] in g for g in origins)] or None,
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits]}],
    )
    split_rows = [{"split": s, "examples": v["examples"], "answerable": v["answerable"],
                   "unanswerable": v["unanswerable"], "removed": v.get("unanswerable_removed_gold", 0),
                   "natural": v.get("unanswerable_natural", 0), "source_docs": v.get("source_docs", 0),
                   "chunks": v.get("chunks", 0)} for s, v in stats["splits"].items() if s in splits]
    per_example = {}
    for v in stats["splits"].values():
        for n, c in v.get("contexts_per_example", {}).items():
            per_example[int(n)] = per_example.get(int(n), 0) + c
    example_split, example_user, example_answer = _example(data_dir) if data_dir else ("", "", "")
    chunks = stats.get("chunks", {})
    writer = stats.get("writer", {})
    card = DatasetCard.from_template(
        card_data, template_path=str(TEMPLATE), pretty_name=pretty, repo_id=repo_id,
        origins_label=", ".join(f"`{o}`" for o in origins) or "local inputs",
        origins_code=", ".join(f"`{o}`" for o in origins),
        split_rows=split_rows,
        contexts_label=", ".join(f"{n} chunk{'s' if n > 1 else ''}: {c}" for n, c in sorted(per_example.items())),
        max_chunk_tokens=chunks.get("max_chunk_tokens"), token_counter=chunks.get("token_counter", "estimate"),
        n_chunks=chunks.get("chunks"), n_documents=chunks.get("documents"), tokens_mean=chunks.get("tokens_mean"),
        min_k=config.get("min_k", 1), k=config.get("k", 4),
        unanswerable_pct=f"{100 * float(config.get('unanswerable_share', 1 / 3)):.0f} %",
        writer=writer.get("name", "extractive"), fallbacks_total=writer.get("fallbacks_total", 0),
        cite_title=config.get("cite_title", True), seed=stats.get("seed"),
        system_prompt=SYSTEM_PROMPT, question_prefix=QUESTION_PREFIX, refusal=REFUSAL,
        example_split=example_split, example_user=example_user, example_answer=example_answer,
        sources=[_source_line(s) for s in stats.get("sources", [])], generated_label=_generated_label(stats),
        license_label=LICENSE_LABELS.get(license_id, license_id), license_note=license_note,
    )
    return check_publishable(str(card), f"dataset card of {repo_id}")
