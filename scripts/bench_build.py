"""Benchmark `rag-de build` (writer: extractive): XQuAD-de part A and synthetic scale-ups, side by side.

Each case runs in its own subprocess, so its peak RSS (ru_maxrss) is its own; the synthetic corpus
(German-like words, one chunk per document) is generated into a temp folder before the timed build.
Reported: examples/s over the whole build (read, chunk, index, retrieve, write Parquet) in wall time
and per CPU second of the build (the fair figure on a shared machine), peak RSS of the build process,
the RSS before the build started, and the first digits of the files' sha256.

With `--baseline REV` the same cases also run on the code of git revision REV (exported to a temp
folder, same inputs), alternating old and new `--repeat` times, and the summary compares the best
run of each and whether both gave byte-identical files: before/after figures of a change in one run.

    python scripts/bench_build.py                                  # xquad + 25k/12.5k + 100k/50k
    python scripts/bench_build.py --cases xquad,100k               # a subset
    python scripts/bench_build.py --cases 100k --baseline HEAD~1 --repeat 2   # old vs new, side by side
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
XQUAD = REPO.parent / "shared" / "data" / "xquad-de" / "xquad.de.part-a.json"
# synthetic cases: name -> (questions, chunks)
SYNTHETIC = {"25k": (25_000, 12_500), "100k": (100_000, 50_000)}

STEMS = ("modul prüf klaus semest studi vorles übung projekt daten rechn netz lern system programm "
         "analys stat wahr method inform theor prax labor team bericht semin arbeit wissen schaft "
         "entwick model algorith struktur graph logik mathe physik chemie biolog sprach kultur recht "
         "wirtschaft markt finanz bank versich energ umwelt klima stadt raum verkehr bau material").split()
ENDINGS = ("", "en", "ung", "ungen", "e", "er", "ern", "lich", "isch", "ik", "keit", "heit", "es", "s")
FUNCTION_WORDS = "der die das und mit von für im am zum zur bei nach aus ist wird sind werden".split()


def german_like_words(rng: random.Random, n: int) -> list[str]:
    """Compounds of 1-3 stems plus an ending (German-like for the stemmer; ~300k possible words)."""
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(STEMS) for _ in range(rng.randint(1, 3))) + rng.choice(ENDINGS))
    return sorted(words)


def write_synthetic(folder: Path, questions: int, chunks: int, seed: int = 0) -> tuple[Path, Path]:
    """A JSONL corpus (one ~70-word paragraph per document) and a QA file with spans from it."""
    rng = random.Random(seed)
    vocab = german_like_words(rng, 20_000)
    corpus, qa = folder / "corpus.jsonl", folder / "qa.jsonl"
    per_doc = max(1, questions // chunks)
    with open(corpus, "w", encoding="utf-8") as fc, open(qa, "w", encoding="utf-8") as fq:
        q = 0
        for d in range(chunks):
            sentences = []
            for _ in range(5):
                words = [rng.choice(vocab) if rng.random() < 0.7 else rng.choice(FUNCTION_WORDS) for _ in range(13)]
                sentences.append(" ".join(words).capitalize() + ".")
            text = " ".join(sentences)
            fc.write(json.dumps({"id": f"d{d}", "title": f"Dokument {d}", "source": f"handbuch-{d // 50}.pdf",
                                 "text": text, "metadata": {"module_code": f"M{d}", "ects": 5}}, ensure_ascii=False) + "\n")
            for j in range(per_doc if d < chunks - 1 else questions - q):
                sentence = sentences[rng.randrange(5)].rstrip(".").split()
                i = rng.randrange(2, len(sentence) - 3)
                span = " ".join(sentence[i:i + 2])
                question = "Was " + " ".join(sentence[max(0, i - 4):i]) + " " + " ".join(sentence[i + 2:i + 5]) + "?"
                unanswerable = rng.random() < 0.1
                fq.write(json.dumps({"id": f"q{q}", "question": question, "answer": "" if unanswerable else span,
                                     "document": f"d{d}", "answerable": not unanswerable}, ensure_ascii=False) + "\n")
                q += 1
    return corpus, qa


def run_case(name: str, threads: int, code: str | None) -> dict:
    """Runs inside the subprocess: build once with the checkout at `code` (default: this one), report figures."""
    if code:
        sys.path.insert(0, code)
    from dataset_builder.build_config import BuildConfig
    from dataset_builder.pipeline import BuildInputs, build

    import dataset_builder.pipeline as pipeline

    assert Path(pipeline.__file__).is_relative_to(Path(code or REPO).resolve()), pipeline.__file__

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory(prefix="rag-de-bench-") as tmp:
        tmp = Path(tmp)
        if name == "xquad":
            inputs = BuildInputs(squad=[str(XQUAD)])
        else:
            n_questions, n_chunks = SYNTHETIC[name]
            corpus, qa = write_synthetic(tmp, n_questions, n_chunks)
            inputs = BuildInputs(corpora=[(str(corpus), str(qa))])
        usage, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        before_build = usage.ru_maxrss / 1024
        cpu_before = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
        started = time.perf_counter()
        stats = build(inputs, tmp / "out", BuildConfig(bm25_threads=threads), progress=False)
        wall = time.perf_counter() - started
        usage, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime - cpu_before
        return {"case": name, "code": "old" if code else "new", "threads": threads,
                "examples": stats["totals"]["examples"],
                "chunks": stats["chunks"]["chunks"], "build_s": round(wall, 2),
                "examples_per_s": round(stats["totals"]["examples"] / wall), "cpu_s": round(cpu, 1),
                "examples_per_cpu_s": round(stats["totals"]["examples"] / max(1e-9, cpu)),
                "peak_rss_mb": round(usage.ru_maxrss / 1024),
                "rss_before_build_mb": round(before_build), "import_rss_mb": round(base_rss),
                "parquet_mb": round(sum((tmp / "out" / f).stat().st_size for f in stats["files"]) / 2 ** 20, 1),
                "sha256": "/".join(h[:8] for _, h in sorted(stats["files"].items()))}


def export_revision(rev: str, folder: Path) -> Path:
    """The tracked files of git revision `rev` in `folder`/code (the old code a benchmark compares with)."""
    code = folder / "code"
    code.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="xquad,25k,100k", help="comma-separated: xquad, 25k, 100k")
    parser.add_argument("--threads", type=int, default=1,
                        help="BuildConfig.bm25_threads: BM25 search threads (0 = one per core)")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also run each case on the code of this git revision (e.g. HEAD~1), alternating")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (and per code with --baseline)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.threads, args.code)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-de-bench-code-") as tmp:
        codes = [None] + ([str(export_revision(args.baseline, Path(tmp)))] if args.baseline else [])
        for name in args.cases.split(","):
            for _ in range(args.repeat):
                for code in reversed(codes):          # old first, then new, alternating
                    env = {**os.environ, "RAG_DE_NO_PROGRESS": "1"}
                    cmd = [sys.executable, __file__, "--one", name, "--threads", str(args.threads)]
                    proc = subprocess.run(cmd + (["--code", code] if code else []), capture_output=True,
                                          text=True, env=env, cwd=code or REPO)   # `python -c` children too
                    if proc.returncode:
                        print(proc.stderr[-3000:], file=sys.stderr)
                        return proc.returncode
                    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                    print(f"[bench] {name} ({rows[-1]['code']}): {rows[-1]['build_s']} s", file=sys.stderr)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"rag-de build, writer extractive, bm25_threads={args.threads}, {cores} cores, "
          f"load average {load:.1f} at the end")
    header = ("case", "code", "examples", "chunks", "build_s", "examples_per_s", "cpu_s", "examples_per_cpu_s",
              "peak_rss_mb", "rss_before_build_mb", "parquet_mb", "sha256")
    print(" | ".join(f"{h:>18}" for h in header))
    for row in rows:
        print(" | ".join(f"{row[h]!s:>18}" for h in header))
    best = {}                                          # (case, code) -> the fastest run
    for row in rows:
        key = (row["case"], row["code"])
        if key not in best or row["build_s"] < best[key]["build_s"]:
            best[key] = row
    cases = list(dict.fromkeys(row["case"] for row in rows))
    if args.baseline:
        changed = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--",
                                  "dataset_builder", "rag_de"], capture_output=True, text=True).stdout.split("\n")
        changed = [line[3:] for line in changed if line.strip()]
        if changed:
            print(f"note: uncommitted changes count as new: {', '.join(changed)}")
        for case in cases:
            old, new = best[(case, "old")], best[(case, "new")]
            print(f"{case}, new vs {args.baseline} (best of {args.repeat}): examples/s x{new['examples_per_s'] / old['examples_per_s']:.2f}, "
                  f"per CPU second x{new['examples_per_cpu_s'] / old['examples_per_cpu_s']:.2f}, "
                  f"peak RSS x{new['peak_rss_mb'] / old['peak_rss_mb']:.2f}; "
                  f"files {'byte-identical' if new['sha256'] == old['sha256'] else 'DIFFERENT'}")
    for a, b in zip(cases, cases[1:]):
        first, last = best[(a, "new")], best[(b, "new")]
        print(f"ratio {b}/{a}: examples x{last['examples'] / first['examples']:.1f}, "
              f"time x{last['build_s'] / first['build_s']:.1f}, peak RSS x{last['peak_rss_mb'] / first['peak_rss_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
