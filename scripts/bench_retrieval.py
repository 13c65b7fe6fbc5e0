"""Retrieval benchmark: recall@k / MRR of BM25, dense and hybrid (RRF), query latency at 10k chunks, build speed.

Why: the demo's answers are only as good as the chunks it retrieves; this prints the README's
"Retrieval" table. Corpora: (a) the quickstart sample dataset (`rag-de build` with the CPU quickstart
config; every split's answerable questions against the unique chunks of all splits, what the demo
indexes), (b) XQuAD-de part A read in place (paragraphs as chunks, never chunked by the builder).
Latency: 10k chunks (the two corpora's chunks replicated under new ids), per query, embedding of the
query included; the dense half's 10k passage embeddings are the measured ones tiled (same cost per
query as 10k distinct vectors).

    python scripts/bench_retrieval.py --dense-model /path/to/encoder --dense-prefixes none
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dataset_builder.contract import Chunk  # noqa: E402
from demo_space.retrieval import ChunkIndex, searchable_text  # noqa: E402
from evaluation.retrieval_eval import KS, evaluate_retrieval, retrieval_queries  # noqa: E402

XQUAD = REPO.parent / "shared" / "data" / "xquad-de" / "xquad.de.part-a.json"


def quickstart_data(folder: str | None) -> Path:
    if folder:
        return Path(folder)
    out = Path(tempfile.mkdtemp(prefix="bench-retrieval-")) / "data"
    subprocess.run([sys.executable, "-m", "rag_de", "build", "--config",
                    str(REPO / "dataset_builder" / "configs" / "cpu-quickstart.yaml"), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def quickstart_corpus(folder: Path):
    from demo_space.retrieval import unique_chunks
    from evaluation.data import load_split

    rows = [r for split in ("train", "validation", "test") for r in load_split(str(folder), split)]
    questions, gold = retrieval_queries(rows)
    return unique_chunks(r["contexts"] for r in rows), questions, gold


def xquad_corpus(path: Path):
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    chunks, questions, gold = [], [], []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            cid = f"xquad-{a}-{p}"
            chunks.append(Chunk(id=cid, title=article.get("title", ""), text=para["context"]))
            for qa in para["qas"]:
                questions.append(qa["question"])
                gold.append(cid)
    return chunks, questions, gold


def latency(index: ChunkIndex, queries, mode: str, k: int = 3) -> tuple[float, float]:
    index.search(queries[0], k, mode)   # warm-up (first tokenizer / matmul call)
    times = []
    for q in queries:
        started = time.perf_counter()
        index.search(q, k, mode)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", help="built dataset folder (default: build the quickstart sample into a temp dir)")
    ap.add_argument("--squad", default=str(XQUAD), help="SQuAD-format file (default: XQuAD-de part A)")
    ap.add_argument("--dense-model", help="encoder folder or Hub id (unset: BM25 only)")
    ap.add_argument("--dense-prefixes", choices=["e5", "none"], default="e5")
    ap.add_argument("--chunks", type=int, default=10_000, help="corpus size of the latency test")
    ap.add_argument("--queries", type=int, default=300, help="queries timed per retriever")
    args = ap.parse_args()

    encoder = None
    if args.dense_model:
        from demo_space.dense import PREFIXES, DenseEncoder

        encoder = DenseEncoder(args.dense_model, *PREFIXES[args.dense_prefixes])
    cache = tempfile.mkdtemp(prefix="bench-emb-")
    corpora = {"quickstart sample": quickstart_corpus(quickstart_data(args.dataset)),
               "XQuAD-de part A": xquad_corpus(Path(args.squad))}
    print(f"dense model: {args.dense_model or '(none: BM25 only)'}; fusion: RRF k=60")
    print(f"{'corpus':<20}{'chunks':>7}{'queries':>8}  {'retriever':<8}" + "".join(f"{'R@' + str(k):>7}" for k in KS)
          + f"{'MRR':>7}")
    for name, (chunks, questions, gold) in corpora.items():
        out = evaluate_retrieval(chunks, questions, gold, encoder, cache)
        for mode in ("bm25", "dense", "hybrid"):
            if out[mode]:
                m = out[mode]
                print(f"{name:<20}{out['corpus_chunks']:>7}{out['queries']:>8}  {mode:<8}"
                      + "".join(f"{m[f'recall@{k}']:>7.3f}" for k in KS) + f"{m['mrr']:>7.3f}")

    # Latency and build throughput at `--chunks` chunks.
    base = [c for chunks, _, _ in corpora.values() for c in chunks]
    big = [Chunk(id=f"{c.id}#{n}", title=c.title, text=c.text, metadata=c.metadata)
           for n in range(args.chunks // len(base) + 1) for c in base][: args.chunks]
    started = time.perf_counter()
    index = ChunkIndex(big)
    bm25_build = time.perf_counter() - started
    print(f"\nBM25 index build: {len(big)} chunks in {bm25_build:.2f} s ({len(big) / bm25_build:,.0f} chunks/s)")
    queries = [q for _, qs, _ in corpora.values() for q in qs][: args.queries]
    p50, p95 = latency(index, queries, "bm25")
    print(f"BM25   query latency at {len(big)} chunks: p50 {p50:.2f} ms, p95 {p95:.2f} ms ({len(queries)} queries)")
    if encoder is not None:
        texts = [searchable_text(c) for c in base]
        started = time.perf_counter()
        vectors = encoder.encode(texts, encoder.passage_prefix)
        dense_build = time.perf_counter() - started
        print(f"dense passage embedding: {len(base)} chunks in {dense_build:.1f} s "
              f"({len(base) / dense_build:,.1f} chunks/s; 10k chunks ~ {args.chunks / (len(base) / dense_build):.0f} s, "
              "once per corpus revision, then cached)")
        index.encoder, index.embeddings = encoder, np.tile(vectors, (args.chunks // len(base) + 1, 1))[: len(big)]
        p50, p95 = latency(index, queries, "hybrid")
        print(f"hybrid query latency at {len(big)} chunks: p50 {p50:.2f} ms, p95 {p95:.2f} ms (query embedding included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
