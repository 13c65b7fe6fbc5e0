"""Benchmark question generation (`rag-de build --documents ... --generate-questions N`) against a local
stand-in OpenAI-compatible server with a fixed latency per request, and check that a killed run resumes
without repeating finished chunks.

Phases, each a `rag-de build` subprocess on the same synthetic folder (one Markdown file per chunk) and
cache: (0) a cold run on its own cache, for the throughput; (1) killed with SIGKILL once about half the chunks have replies; (2) rerun to the end: no cached
chunk may be asked again; (3) rerun with everything cached. Reported: chunks/s of the generation phase
(stats.json `timings_s.questions`), HTTP calls and cache hits per phase, the chunks asked again (only
those in flight at the kill), and the kept/rejected counts.

    python scripts/bench_questions.py                                # 2000 chunks, 50 ms, concurrency 16
    python scripts/bench_questions.py --chunks 10000 --latency 0.2 --concurrency 64
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = ("Modul Prüfung Klausur Semester Vorlesung Übung Projekt Daten Labor Bericht Seminar Arbeit "
         "Statistik Analyse Methode Theorie Praxis Team Logik Graph").split()


class StandIn:
    """/v1/chat/completions that answers each chunk with one verbatim-span question and one
    unanswerable one (JSON), after `latency` seconds; counts requests per chunk text."""

    def __init__(self, latency: float):
        self.latency = latency
        self.lock = threading.Lock()
        self.asked: Counter = Counter()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][-1]["content"]
                chunk = user.split("\n", 1)[1].rsplit("\n\nSchreibe ", 1)[0]
                with stand_in.lock:
                    stand_in.asked[chunk] += 1
                time.sleep(stand_in.latency)
                tag = re.search(r"Nummer (\d+)", chunk).group(1)
                reply = {"fragen": [{"frage": f"Welche Angabe macht Abschnitt Nummer {tag} zum Schluss?",
                                     "antwort": " ".join(chunk.split()[-3:])}],
                         "unbeantwortbar": [f"Wer leitet den Bereich von Abschnitt Nummer {tag}?"]}
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": json.dumps(
                    reply, ensure_ascii=False)}}]}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):    # the killed client's open requests
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answered(self) -> int:
        with self.lock:
            return len(self.asked)


def write_folder(folder: Path, chunks: int) -> None:
    for n in range(chunks):
        words = " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(12))
        (folder / f"doc{n:05d}.md").write_text(
            f"# Dokument {n}\n\nAbschnitt Nummer {n} beschreibt {words}. Er endet mit {n % 97} Punkten.\n",
            encoding="utf-8")


def run_build(folder: Path, out: Path, cache: Path, url: str, args, kill_after: int | None, stand_in: StandIn):
    cmd = [sys.executable, "-m", "rag_de", "build", "--documents", str(folder), "--generate-questions", "1",
           "--openai.model", "stand-in", "--openai.base_url", url, "--openai.concurrency", str(args.concurrency),
           "--questions.batch_size", str(args.batch_size), "--cache_dir", str(cache), "--out", str(out)]
    env = {**os.environ, "RAG_DE_NO_PROGRESS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_after is not None:
        while stand_in.answered() < kill_after and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    output = proc.communicate()[0]
    seconds = time.perf_counter() - started
    if kill_after is None and proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode}):\n{output[-3000:]}")
    stats = json.loads((out / "stats.json").read_text()) if kill_after is None else None
    return proc.returncode, seconds, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request at the stand-in")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=256, help="questions.batch_size (chunks per step)")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args()

    stand_in = StandIn(args.latency)
    with tempfile.TemporaryDirectory(prefix="bench-questions-") as tmp:
        tmp = Path(tmp)
        folder, cache = tmp / "docs", tmp / "cache"
        folder.mkdir()
        write_folder(folder, args.chunks)
        _, cold_s, cold = run_build(folder, tmp / "out-cold", tmp / "cache-cold", stand_in.url, args, None, stand_in)
        stand_in.asked.clear()
        code, killed_s, _ = run_build(folder, tmp / "out", cache, stand_in.url, args, args.chunks // 2, stand_in)
        cached = len(list((cache / "questions-openai").rglob("*.json")))
        before = Counter(stand_in.asked)
        _, resumed_s, resumed = run_build(folder, tmp / "out", cache, stand_in.url, args, None, stand_in)
        # chunks asked before the kill and again after it: only those whose reply was still in flight
        asked_again = sum(1 for k in before if stand_in.asked[k] > before[k])
        _, cached_s, again = run_build(folder, tmp / "out2", cache, stand_in.url, args, None, stand_in)

    def phase(stats: dict, wall: float) -> dict:
        q = stats["questions"]
        seconds = stats["timings_s"].get("questions", 0.0)
        return {"wall_s": round(wall, 2), "questions_s": seconds,
                "chunks_per_s": round(q["chunks"] / seconds, 1) if seconds else None,
                "new_calls_per_s": round(q["generator"]["http_calls"] / seconds, 1) if seconds else None,
                "http_calls": q["generator"]["http_calls"], "cache_hits": q["generator"]["cache_hits"],
                "kept": q["kept"], "rejected": q["rejected"]}

    report = {"chunks": args.chunks, "latency_s": args.latency, "concurrency": args.concurrency,
              "cold": phase(cold, cold_s), "killed": {"returncode": code, "wall_s": round(killed_s, 2), "cached_replies": cached},
              "resumed": phase(resumed, resumed_s), "all_cached": phase(again, cached_s),
              "asked_before_kill": len(before), "asked_again_after_kill": asked_again,
              "in_flight_at_kill": len(before) - cached,
              "ideal_chunks_per_s": round(args.concurrency / args.latency, 1) if args.latency else None}
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        from rag_de.atomic import write_text

        write_text(args.json, text + "\n")
    ok = (asked_again == len(before) - cached and report["resumed"]["cache_hits"] == cached
          and report["resumed"]["http_calls"] == args.chunks - cached and report["all_cached"]["http_calls"] == 0)
    print("resume check:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
