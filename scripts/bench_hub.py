"""Benchmark the local Hub with the real huggingface_hub client: upload/download throughput through Xet
(hf_xet, the client's default) and through LFS side by side, and the commit rate (sequential and 8
threads), against a fresh server in a temporary folder.

    python scripts/bench_hub.py --size_mb 100 --commits 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag_de.config import add_dataclass_arguments, load, overrides_from_args  # noqa: E402


@dataclass
class BenchConfig:
    size_mb: int = field(default=100, metadata={"help": "size of the file uploaded and downloaded (Xet and LFS)"})
    commits: int = field(default=50, metadata={"help": "sequential small commits to time"})
    threads: int = field(default=8, metadata={"help": "threads for the concurrent commit run"})
    commits_per_thread: int = field(default=10, metadata={"help": "commits per thread in the concurrent run"})


def _start(data_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "local_hub", "hub", "serve", "--data-dir", str(data_dir),
                             "--port", str(port)], cwd=ROOT, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("local hub did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, BenchConfig)
    config = load(BenchConfig, overrides=overrides_from_args(parser.parse_args()))
    tmp = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    os.environ.update(HF_HOME=str(tmp / "hf"), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    proc, endpoint = _start(tmp / "hub")
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ.pop("HF_HUB_DISABLE_XET", None)
    from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_download

    try:
        api = HfApi(endpoint=endpoint, token=(tmp / "hub" / "token").read_text().strip())
        api.create_repo("org/bench")
        rates = {}
        for transfer in ("Xet", "LFS"):  # different random bytes each: no deduplication between the two
            constants.HF_HUB_DISABLE_XET = transfer == "LFS"  # what HF_HUB_DISABLE_XET=1 sets at import
            big = tmp / f"big-{transfer}.bin"
            with open(big, "wb") as f:
                for _ in range(config.size_mb):
                    f.write(os.urandom(1 << 20))
            t = time.perf_counter()
            api.upload_file(path_or_fileobj=big, path_in_repo=big.name, repo_id="org/bench")
            up = time.perf_counter() - t
            t = time.perf_counter()
            hf_hub_download("org/bench", big.name, token=api.token, cache_dir=tmp / "cache")
            rates[transfer] = (config.size_mb / up, config.size_mb / (time.perf_counter() - t))
        constants.HF_HUB_DISABLE_XET = False
        xet_files = len(list((tmp / "hub" / "xet" / "files").glob("*.json")))
        if xet_files != 1:  # the Xet row must really have gone through Xet (and only it)
            raise SystemExit(f"bench_hub: error: {xet_files} files arrived through Xet, expected 1")

        t = time.perf_counter()
        for i in range(config.commits):
            api.create_commit("org/bench", [CommitOperationAdd(f"s/{i}.txt", b"%d" % i)], commit_message=f"c{i}")
        seq = time.perf_counter() - t

        def worker(k: int) -> None:
            for i in range(config.commits_per_thread):
                api.create_commit("org/bench", [CommitOperationAdd(f"p/{k}-{i}.txt", b"x")], commit_message="p")

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(config.threads)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        par = time.perf_counter() - t
        n_par = config.threads * config.commits_per_thread
        print(f"{'measure':<46}{'value':>12}")
        for transfer, (up_rate, down_rate) in rates.items():
            how = "chunk+xorbs+shard+commit" if transfer == "Xet" else "hash+PUT+commit"
            print(f"{f'{transfer} upload {config.size_mb} MB ({how})':<46}{up_rate:>9.1f} MB/s")
            print(f"{f'{transfer} file download (hf_hub_download)':<46}{down_rate:>9.1f} MB/s")
        print(f"{'sequential small commits':<46}{config.commits / seq:>7.1f} commits/s")
        print(f"{f'{config.threads} threads x {config.commits_per_thread} commits':<46}{n_par / par:>7.1f} commits/s")
        print(f"{'concurrent / sequential rate':<46}{(n_par / par) / (config.commits / seq):>11.2f}x")
        print(f"(fresh server on {endpoint}, data in a temp dir; {os.cpu_count()} CPUs)")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
