"""`rag-de build`: read inputs, chunk, split by document, search negatives, assemble examples, write Parquet.

This module only orders the steps and reports on them (stats.json); each step lives in its own module:
inputs (`inputs`), chunks and gold spans (`examples.Corpus`), questions generated for the chunks of
`--documents` folders (`questions`), splits (`splits`), BM25 search
(`retrieval`), example assembly (`assembly`), Parquet files (`parquet_files`). Each split is processed
in batches (search, plan, answer, one Parquet row group), so memory stays flat in the number of
examples: what stays is the input (documents, chunks, questions) and one split's BM25 index. The same
inputs and seed give byte-identical files.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from dataset_builder.assembly import add_rows, new_split_stats, plan_question, write_answers
from dataset_builder.build_config import BuildConfig
from dataset_builder.examples import Corpus, choose_removals, locate_all
from dataset_builder.inputs import SAMPLE_DATA, BuildInputs, read_inputs
from dataset_builder.parquet_files import SplitFiles
from dataset_builder.records import InputError, SkipLog, sha256_file
from dataset_builder.schema import SPLITS
from dataset_builder.splits import split_questions
from dataset_builder.writers import make_writer

__all__ = ["SAMPLE_DATA", "BuildInputs", "build", "run_build_cli"]

NOTES = ("answer_start_repaired", "generated_id")   # SkipLog reasons for records that were kept
STATS_TOKEN_SAMPLE = 10_000   # chunks whose tokens are counted for the chunk statistics in stats.json


class _Laps:
    """Seconds per phase of the build (stats.json `timings_s`: where a build spends its time)."""

    def __init__(self):
        self.seconds: Counter = Counter()
        self._clock = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._clock
        self._clock = now


def build(inputs: BuildInputs, out_dir: str | Path, config: BuildConfig | None = None, progress: bool = True) -> dict:
    """Build the dataset into `out_dir`; returns the stats (also written to out_dir/stats.json)."""
    from rag_de.atomic import write_json
    from rag_de.base_model import cache_root

    from dataset_builder.chunking import TokenCounter

    config = (config or BuildConfig()).validate()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skips = SkipLog(strict=config.strict)
    lap = _Laps()

    if inputs.documents and not config.questions.per_chunk:
        raise InputError("--documents needs questions: give --generate-questions N (questions.per_chunk) and "
                         "an endpoint (--openai.base_url/--openai.model, or --questions.generator transformers)")
    docs, questions, sources = read_inputs(inputs, config, skips)
    lap("read")
    counter = TokenCounter.from_name(config.tokenizer)
    corpus = Corpus.build(docs, config.max_chunk_tokens, counter, progress=progress)
    cache_dir = Path(config.cache_dir) if config.cache_dir else cache_root() / "writer-cache"
    generated = None
    if inputs.documents:
        lap("chunk")
        generated = _generate(corpus, sources, config, cache_dir, out_dir, progress)
        questions += generated[0]
        lap("questions")
    gold = locate_all(questions, corpus, skips)
    lap("chunk")
    questions = [q for q in questions if q.id in gold]
    per_split = split_questions(questions, docs, corpus, config)
    writer = make_writer(config, cache_dir)
    fallbacks: Counter = Counter()
    split_stats: dict[str, dict] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(questions), desc="building", unit="ex", dynamic_ncols=True)
    try:
        with SplitFiles(out_dir) as files:        # all splits appear together, once all are complete
            for split, (split_qs, split_chunks) in zip(SPLITS, per_split):
                stats = split_stats[split] = new_split_stats(split_qs, split_chunks)
                _build_split(split, split_qs, split_chunks, corpus, gold, config, writer, files, fallbacks,
                             skips, stats, lap, bar)
                stats["contexts_per_example"] = dict(sorted(stats["contexts_per_example"].items()))
    finally:
        if bar is not None:
            bar.close()
        writer.close()

    elapsed = time.perf_counter() - started
    result = _stats(config, corpus, counter, split_stats, len(questions), skips, sources, writer, fallbacks,
                    elapsed, lap, out_dir)
    if generated is not None:
        result["documents"] = _reading_totals([s["reading"] for s in sources if s["kind"] == "documents"])
        result["questions"] = generated[1]
    write_json(out_dir / "stats.json", result)
    return result


def _generate(corpus: Corpus, sources: list[dict], config: BuildConfig, cache_dir: Path, out_dir: Path,
              progress: bool) -> tuple[list, dict]:
    """Questions for the chunks of the documents folders (also written to OUT/generated_questions.jsonl,
    the QA file's fields plus answer_start, for reviewing them); returns them and the report."""
    import json

    from rag_de.atomic import atomic_open

    from dataset_builder.questions import generate_questions, make_generator

    origins = {s["origin"] for s in sources if s["kind"] == "documents"}
    chunk_ids = [c for c, d in enumerate(corpus.chunk_doc) if corpus.docs[d].origin in origins]
    generator = make_generator(config, cache_dir)
    try:
        questions, report = generate_questions(corpus, chunk_ids, config, generator, progress)
    finally:
        generator.close()
    for source in sources:
        if source["kind"] == "documents":
            source["questions"] = sum(q.origin == source["origin"] for q in questions)
    with atomic_open(out_dir / "generated_questions.jsonl") as fh:
        for q in questions:
            fh.write(json.dumps({"id": q.id, "question": q.question, "answer": q.gold_span, "document": q.doc_id,
                                 "answerable": q.answerable, "answer_start": q.answer_start},
                                ensure_ascii=False) + "\n")
    if not questions:
        raise InputError(f"no generated question passed the checks ({report.as_dict({})['rejected']}); "
                         "use a stronger model (see the README, 'Your own documents') or check the endpoint "
                         f"({report.failed_requests} failed requests)")
    return questions, report.as_dict(generator.stats())


def _reading_totals(reports: list[dict]) -> dict:
    """The documents folders' reading reports summed (stats.json `documents`, the dataset card's table)."""
    total: dict = {"files": 0, "read": 0, "documents": 0, "pages": 0, "pages_without_text": 0}
    skipped: Counter = Counter()
    formats: Counter = Counter()
    for r in reports:
        for key in total:
            total[key] += r[key]
        skipped.update(r["skipped"])
        formats.update(r["formats"])
    return {**total, "skipped": dict(sorted(skipped.items())), "skipped_total": sum(skipped.values()),
            "formats": dict(sorted(formats.items()))}


def _build_split(split: str, questions: list, chunks: list[int], corpus: Corpus, gold: dict, config: BuildConfig,
                 writer, files: SplitFiles, fallbacks: Counter, skips: SkipLog, stats: dict, lap: _Laps,
                 bar) -> None:
    """One split, batch by batch: BM25 hits over the split's chunks, plans, answers, one row group."""
    from dataset_builder.retrieval import BM25Index

    if not questions:
        return
    lap("other")
    index = BM25Index(f"{corpus.chunks[c].title}\n{corpus.chunks[c].text}" for c in chunks)
    lap("index")
    removals = choose_removals(questions, config.unanswerable_share, config.seed, split)
    pool = config.negatives_pool + config.k
    for b in range(0, len(questions), config.batch_size):
        batch = questions[b:b + config.batch_size]
        hits = index.search_many([q.question for q in batch], pool, n_threads=config.bm25_threads)
        lap("retrieve")
        plans = [p for q, h in zip(batch, hits)
                 for p in plan_question(q, gold[q.id], q.id in removals, [chunks[i] for i, _ in h], chunks,
                                        corpus, config, split)]
        del hits
        lap("plan")
        rows = add_rows(plans, write_answers(plans, corpus, config, writer, fallbacks), corpus, skips, stats)
        del plans
        lap("answer")
        files.write(split, rows)
        del rows
        lap("parquet")
        if bar is not None:
            bar.update(len(batch))


def _stats(config: BuildConfig, corpus: Corpus, counter, split_stats: dict, questions_used: int, skips: SkipLog,
           sources: list, writer, fallbacks: Counter, elapsed: float, lap: _Laps, out_dir: Path) -> dict:
    """stats.json: the dataset's make-up, its sources and licenses, the config, timings, file hashes."""
    from rag_de.config import to_dict

    step = max(1, len(corpus.chunks) // STATS_TOKEN_SAMPLE)    # token stats from an even sample
    token_counts = [counter(c.text) for c in corpus.chunks[::step]]
    total = sum(s["examples"] for s in split_stats.values())
    return {
        "seed": config.seed,
        "splits": split_stats,
        "totals": {"examples": total,
                   "answerable": sum(s["answerable"] for s in split_stats.values()),
                   "unanswerable": sum(s["unanswerable"] for s in split_stats.values()),
                   "questions_used": questions_used,
                   "records_skipped": sum(v for k, v in skips.counts.items() if k not in NOTES)},
        "chunks": {"documents": len(corpus.docs), "chunks": len(corpus.chunks),
                   "max_chunk_tokens": config.max_chunk_tokens,
                   "token_counter": config.tokenizer or "estimate (2.45 tokens/word + 1/punctuation mark)",
                   "tokens_mean": round(sum(token_counts) / max(1, len(token_counts)), 1),
                   "tokens_max": max(token_counts, default=0)},
        "writer": {"name": writer.name, "fallbacks": dict(sorted(fallbacks.items())),
                   "fallbacks_total": sum(fallbacks.values()), **writer.stats()},
        "skipped": skips.as_dict(),
        "sources": sources,
        "licenses": sorted({s["license"] or "unknown" for s in sources}),
        "origins": sorted({s["origin"] for s in sources}),
        "config": to_dict(config),
        "elapsed_s": round(elapsed, 3),
        "timings_s": {k: round(v, 2) for k, v in lap.seconds.items()},
        "examples_per_s": round(total / elapsed, 1) if elapsed > 0 else None,
        "files": {f"{s}.parquet": sha256_file(out_dir / f"{s}.parquet") for s in SPLITS
                  if (out_dir / f"{s}.parquet").exists()},
    }


def run_build_cli(args) -> int:
    """Entry point of `rag-de build` (flags -> BuildInputs + BuildConfig).

    Bad input raises a `UserError` (`ConfigError`, `InputError`): `rag_de.cli.main` prints it as
    `rag-de build: error: ...` and exits 2, like every other subcommand.
    """
    import sys

    from rag_de.config import load, overrides_from_args
    from rag_de.errors import UserError

    if len(args.corpus) != len(args.qa):
        raise UserError(f"{len(args.corpus)} --corpus but {len(args.qa)} --qa on the command line; "
                        "give one --qa per --corpus, in the same order")
    config = load(BuildConfig, args.config, overrides_from_args(args)).validate()
    inputs = BuildInputs(squad=list(args.squad), corpora=list(zip(args.corpus, args.qa)),
                         documents=list(args.documents))
    if not inputs.squad and not inputs.corpora and not inputs.documents:
        inputs = BuildInputs.sample()
        print(f"[build] no inputs given: using the shipped sample data in {SAMPLE_DATA}", file=sys.stderr)
    stats = build(inputs, args.out, config, progress=not os.environ.get("RAG_DE_NO_PROGRESS"))
    _print_summary(stats, args.out)
    return 0


def _print_summary(stats: dict, out: str) -> None:
    sizes = ", ".join(f"{s} {v['examples']} ({v['unanswerable']} refusals)" for s, v in stats["splits"].items())
    print(f"[build] {stats['totals']['examples']} examples -> {out}: {sizes}")
    print(f"[build] {stats['chunks']['chunks']} chunks from {stats['chunks']['documents']} documents; "
          f"{stats['examples_per_s']} examples/s; writer {stats['writer']['name']} "
          f"({stats['writer']['fallbacks_total']} fallbacks)")
    if "questions" in stats:
        q, d = stats["questions"], stats["documents"]
        print(f"[build] documents: {d['read']} of {d['files']} files read ({d['skipped_total']} skipped: "
              + (", ".join(f"{k} {v}" for k, v in d["skipped"].items()) or "none") + "); questions: "
              f"{q['proposed']} proposed, {q['kept']} kept, {q['rejected_total']} rejected, span check "
              f"passed {q['span_check_pass_rate']}")
    skipped = stats["skipped"]["counts"]
    if skipped:
        print("[build] skipped/repaired records: " + ", ".join(f"{k} {v}" for k, v in skipped.items())
              + f" (details in {out}/stats.json)")
