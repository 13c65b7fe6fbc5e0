"""`rag-de quickstart`: the whole pipeline on the embedded default, end to end, on one machine.

local Hub (background) -> build dataset from the shipped sample data -> publish `org/spaces-rag-de`
-> train the SmolLM2-135M QLoRA adapter on CPU -> evaluate base vs adapter -> push adapter + card
-> deploy the demo Space to the local Hub -> export the adapter merged into its base (and as GGUF with an
Ollama Modelfile) to the local Hub -> start the demo locally (unless --headless).

Every stage is the same `rag-de` subcommand a user would type (printed before it runs), run as a
subprocess with `HF_ENDPOINT`/`HF_TOKEN` pointing at the local Hub. A rerun reuses what is done: each
stage checks its own result first, training resumes from its last checkpoint, evaluation from its
per-example cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dataset_builder.build_config import CPU_BUILD_CONFIG
from rag_de import config as config_lib
from rag_de.base_model import EMBEDDED_MODEL_ID, cache_root
from training_space.config import CPU_PRESET


@dataclass
class QuickstartConfig:
    """Where things go and how big the run is; defaults are the README's quickstart."""

    workdir: str = field(default="", metadata={"help": "run folder (default: <cache>/quickstart)"})
    hub_data_dir: str = field(default="", metadata={"help": "local Hub storage (default: <cache>/hub)"})
    hub_port: int = field(default=8765, metadata={"help": "port of the local Hub (a free one if taken)"})
    namespace: str = field(default="org", metadata={"help": "Hub namespace for dataset, adapter, Space"})
    dataset_name: str = field(default="spaces-rag-de", metadata={"help": "dataset repo name"})
    adapter_name: str = field(default="smollm2-135m-rag-de-qlora", metadata={"help": "adapter repo name"})
    space_name: str = field(default="spaces-rag-de-demo", metadata={"help": "demo Space repo name"})
    base_model: str = field(default=EMBEDDED_MODEL_ID, metadata={"help": "base model (Hub id)"})
    build_config: str = field(default=str(CPU_BUILD_CONFIG), metadata={
        "help": "`rag-de build` config: the quickstart's rows are sized for CPU training (128-token chunks, "
        "1-2 per example)"})
    train_config: str = field(default=str(CPU_PRESET), metadata={"help": "training preset YAML"})
    max_steps: int = field(default=0, metadata={"help": "override the preset's max_steps (0: keep)"})
    train_args: list[str] = field(
        default_factory=list, metadata={"help": "extra `rag-de train` flags, comma-separated, e.g. "
                                         "--training.save_steps=5"})
    eval_limit: int = field(default=0, metadata={"help": "evaluate on the first N test examples (0: all)"})
    eval_batch_size: int = field(default=32, metadata={
        "help": "prompts per generate call in the evaluation (32: the 28 test rows in one batch; on a CPU a 4-bit "
        "model dequantizes its weights at every decode step, so fewer, larger batches pay: 149 s vs 219 s for "
        "two batches of 16, measured side by side on 2 shared cores)"})
    eval_compute_loss: bool = field(default=False, metadata={
        "help": "also the teacher-forced answer loss of base and adapter in the evaluation (~1 min on 2 cores; "
        "the validation loss is in train_summary.json either way)"})
    eval_max_new_tokens: int = field(default=64, metadata={
        "help": "answer length cap in the evaluation (a cited answer is ~45 tokens; the base model rambles)"})
    headless: bool = field(default=False, metadata={"help": "skip starting the demo at the end"})
    demo_port: int = field(default=7860, metadata={"help": "port of the local demo"})
    use_running_hub: bool = field(
        default=False, metadata={"help": "use the Hub at $HF_ENDPOINT with $HF_TOKEN instead of starting one"})
    export_gguf: Literal["none", "f32", "f16", "q8_0"] = field(default="none", metadata={
        "help": "after the merged export, also a GGUF of this type + Ollama Modelfile (none: skip, the default: "
        "it adds about a minute on 2 cores, past the 15-minute budget)"})


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the local Hub's, when the configured one is taken; tests use it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/api/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def banner(stage: str, text: str) -> None:
    print(f"\n=== [{stage}] {text}", flush=True)


class Pipeline:
    def __init__(self, config: QuickstartConfig):
        self.config = config
        root = cache_root()
        self.work = Path(config.workdir or root / "quickstart")
        self.hub_dir = Path(config.hub_data_dir or root / "hub")
        self.work.mkdir(parents=True, exist_ok=True)
        self.dataset_repo = f"{config.namespace}/{config.dataset_name}"
        self.adapter_repo = f"{config.namespace}/{config.adapter_name}"
        self.space_repo = f"{config.namespace}/{config.space_name}"
        self.merged_repo = f"{config.namespace}/{config.adapter_name}-merged"
        self.gguf_repo = f"{config.namespace}/{config.adapter_name}-GGUF"
        self.data_dir = self.work / "data"
        self.run_dir = self.work / "run"
        self.hub_proc: subprocess.Popen | None = None
        self.hub_pid: int | None = None  # a server adopted from an earlier, killed run
        self.env = dict(os.environ)

    # -- helpers ---------------------------------------------------------------------------------
    def rag_de(self, stage: str, *args: str) -> None:
        """Run one `rag-de` subcommand, printed first, so every stage is reproducible by hand."""
        cmd = [sys.executable, "-m", "rag_de", *args]
        print("$ rag-de " + " ".join(shlex.quote(a) for a in args), flush=True)
        result = subprocess.run(cmd, env=self.env)
        if result.returncode != 0:
            raise SystemExit(f"[{stage}] failed with exit code {result.returncode}; rerun the quickstart "
                             "to continue from here (finished stages are reused)")

    def hub_api(self):
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.env["HF_ENDPOINT"], token=self.env["HF_TOKEN"])

    # -- stages ----------------------------------------------------------------------------------
    def start_hub(self) -> None:
        if self.config.use_running_hub:
            if "HF_ENDPOINT" not in self.env:
                raise SystemExit("--use-running-hub needs HF_ENDPOINT (and HF_TOKEN) in the environment")
            banner("hub", f"using the Hub at {self.env['HF_ENDPOINT']}")
            return
        self.hub_dir.mkdir(parents=True, exist_ok=True)
        pid_file = self.hub_dir / "quickstart-server.json"
        endpoint = self._adopt_running_hub(pid_file)
        if endpoint is None:
            port = self.config.hub_port if _port_free(self.config.hub_port) else free_port()
            endpoint = f"http://127.0.0.1:{port}"
            banner("hub", f"starting the local Hub on {endpoint} (data: {self.hub_dir})")
            log = open(self.work / "hub.log", "ab")
            self.hub_proc = subprocess.Popen(
                [sys.executable, "-m", "rag_de", "hub", "serve", "--data-dir", str(self.hub_dir), "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            deadline = time.time() + 60
            while not _healthy(endpoint):
                if self.hub_proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"the local Hub did not start; see {self.work / 'hub.log'}")
                time.sleep(0.3)
            from rag_de.atomic import write_json

            write_json(pid_file, {"pid": self.hub_proc.pid, "endpoint": endpoint})
        self.env["HF_ENDPOINT"] = endpoint
        self.env["HF_TOKEN"] = (self.hub_dir / "token").read_text().strip()
        self.env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        print(f"local Hub ready; token in {self.hub_dir / 'token'} (not printed)")

    def _adopt_running_hub(self, pid_file: Path) -> str | None:
        """A hub left running by a killed quickstart on the same data dir is reused (one server per
        data dir), and stopped at the end like one we started."""
        try:
            info = json.loads(pid_file.read_text())
            os.kill(int(info["pid"]), 0)
        except (OSError, ValueError, KeyError):
            return None
        if not _healthy(info["endpoint"]):
            return None
        banner("hub", f"reusing the local Hub left running on {info['endpoint']} (pid {info['pid']})")
        self.hub_pid = int(info["pid"])
        return info["endpoint"]

    def stop_hub(self) -> None:
        pid = self.hub_proc.pid if self.hub_proc is not None else self.hub_pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(150):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if self.hub_proc is not None and self.hub_proc.poll() is not None:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        (self.hub_dir / "quickstart-server.json").unlink(missing_ok=True)
        print("\nlocal Hub stopped")

    def build(self) -> None:
        banner("build", "dataset from the shipped sample data (module catalog + questions)")
        if (self.data_dir / "stats.json").exists():
            print(f"reusing {self.data_dir} (delete it to rebuild)")
        else:
            self.rag_de("build", "build", "--config", self.config.build_config, "--out", str(self.data_dir))
        stats = json.loads((self.data_dir / "stats.json").read_text())
        print(f"splits: { {k: v for k, v in stats.get('splits', {}).items()} }")
        print(_writer_line(stats.get("writer", {})))

    def publish(self) -> None:
        banner("publish", f"dataset -> {self.env['HF_ENDPOINT']}/datasets/{self.dataset_repo}")
        marker = self.work / "published.json"
        stats_sha = _sha256(self.data_dir / "stats.json")
        if marker.exists() and json.loads(marker.read_text()).get("stats_sha256") == stats_sha \
                and self.hub_api().repo_exists(self.dataset_repo, repo_type="dataset"):
            print("already published (same build)")
            return
        self.rag_de("publish", "publish", "--data", str(self.data_dir), "--repo", self.dataset_repo)
        from rag_de.atomic import write_json

        write_json(marker, {"stats_sha256": stats_sha, "repo": self.dataset_repo})

    def train(self) -> None:
        banner("train", f"QLoRA adapter on {self.config.base_model} (CPU preset {Path(self.config.train_config).name})")
        if (self.run_dir / "train_summary.json").exists():
            print(f"reusing the finished run in {self.run_dir}")
            return
        args = ["train", "--config", self.config.train_config, "--dataset", self.dataset_repo,
                "--output-dir", str(self.run_dir), "--hub-model-id", self.adapter_repo]
        if self.config.max_steps:
            args += ["--training.max_steps", str(self.config.max_steps)]
        args += list(self.config.train_args)
        if any(self.run_dir.glob("checkpoint-*")):
            print("found checkpoints from an interrupted run: resuming")
            args.append("--resume")
        self.rag_de("train", *args)

    def evaluate(self) -> None:
        banner("evaluate", "base vs adapter on the test split (cached per example)")
        args = ["evaluate", "--base", self.config.base_model, "--adapter", self.adapter_repo,
                "--dataset", self.dataset_repo, "--split", "test", "--out", str(self.run_dir / "eval"),
                "--run-dir", str(self.run_dir), "--batch-size", str(self.config.eval_batch_size),
                "--max-new-tokens", str(self.config.eval_max_new_tokens),
                "--compute-loss", str(self.config.eval_compute_loss).lower(),
                "--readings", "evidence", "--base-readings", "false"]
        if self.config.eval_limit:
            args += ["--limit", str(self.config.eval_limit)]
        self.rag_de("evaluate", *args)
        results = json.loads((self.run_dir / "eval" / "results.json").read_text())
        print_metrics(results)

    def push_card(self) -> None:
        banner("card", f"model card with evaluation results -> {self.adapter_repo}")
        self.rag_de("card", "card", "model", "--run-dir", str(self.run_dir), "--repo", self.adapter_repo, "--push")

    def deploy_demo(self) -> None:
        banner("deploy", f"demo Space -> {self.env['HF_ENDPOINT']}/spaces/{self.space_repo}")
        self.rag_de("deploy", "deploy", "demo", "--space", self.space_repo, "--adapter", self.adapter_repo,
                    "--dataset", self.dataset_repo, "--base", self.config.base_model)

    def export(self) -> None:
        """Merged model (and GGUF) of the adapter on the local Hub; redone only when the adapter changed."""
        banner("export", f"merged model -> {self.merged_repo}" + (
            f", GGUF {self.config.export_gguf} -> {self.gguf_repo}" if self.config.export_gguf != "none" else ""))
        import shutil

        from rag_de.atomic import write_json

        api = self.hub_api()
        marker, folder = self.work / "exported.json", self.work / "export"
        wanted = {"adapter_sha": api.model_info(self.adapter_repo).sha, "gguf": self.config.export_gguf}
        repos = [self.merged_repo] + ([self.gguf_repo] if self.config.export_gguf != "none" else [])
        if marker.exists() and json.loads(marker.read_text()) == wanted and all(map(api.repo_exists, repos)):
            print("already exported (same adapter commit)")
            return
        shutil.rmtree(folder, ignore_errors=True)   # exports never overwrite: clear the stale one first
        self.rag_de("export", "export", "merged", "--adapter", self.adapter_repo, "--out", str(folder / "merged"),
                    "--push", self.merged_repo)
        if self.config.export_gguf != "none":
            self.rag_de("export", "export", "gguf", "--adapter", self.adapter_repo, "--dtype", self.config.export_gguf,
                        "--out", str(folder / "gguf" / f"{self.config.adapter_name}-{self.config.export_gguf}.gguf"),
                        "--push", self.gguf_repo)
        write_json(marker, wanted)

    def demo(self) -> None:
        banner("demo", f"starting the demo on http://127.0.0.1:{self.config.demo_port} (Ctrl-C stops it)")
        self.rag_de("demo", "demo", "--adapter", self.adapter_repo, "--dataset", self.dataset_repo,
                    "--base", self.config.base_model, "--port", str(self.config.demo_port))

    def run(self) -> int:
        started = time.time()
        seconds: dict[str, float] = {}
        try:
            for name, stage in (("hub", self.start_hub), ("build", self.build), ("publish", self.publish),
                                ("train", self.train), ("evaluate", self.evaluate), ("card", self.push_card),
                                ("deploy", self.deploy_demo), ("export", self.export)):
                begun = time.time()
                stage()
                seconds[name] = time.time() - begun
            banner("done", f"pipeline finished in {time.time() - started:.0f} s ("
                   + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()) + "); results:")
            print(f"  dataset : {self.env['HF_ENDPOINT']}/datasets/{self.dataset_repo}   (local copy: {self.data_dir})")
            print(f"  adapter : {self.env['HF_ENDPOINT']}/{self.adapter_repo}   (run folder: {self.run_dir})")
            print(f"  eval    : {self.run_dir / 'eval' / 'results.json'}")
            print(f"  Space   : {self.env['HF_ENDPOINT']}/spaces/{self.space_repo}")
            print(f"  merged  : {self.env['HF_ENDPOINT']}/{self.merged_repo}   (local copy: {self.work / 'export' / 'merged'})")
            if self.config.export_gguf != "none":
                print(f"  GGUF    : {self.env['HF_ENDPOINT']}/{self.gguf_repo}   (with Ollama Modelfile; local: "
                      f"{self.work / 'export' / 'gguf'})")
            if not self.config.headless:
                self.demo()
        except KeyboardInterrupt:
            print("\ninterrupted: rerun the same command to continue (finished stages are reused)")
            return 130
        finally:
            self.stop_hub()
        return 0


def _writer_line(writer: dict) -> str:
    """Which answer writer made the dataset's answers: the quickstart's default is the offline extractive one."""
    name = writer.get("name", "?")
    if name == "extractive":
        return ("answers written by: extractive (the cited chunk's sentence, offline); for abstractive answers "
                "build with `--writer openai --openai.base_url URL --openai.model M` (vLLM, TGI, Ollama)")
    return (f"answers written by: {name} ({writer.get('model', '')}); "
            f"{writer.get('fallbacks_total', 0)} fell back to the extracted sentence")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def print_metrics(results: dict) -> None:
    """Free generation of base and adapter, then the headline figures of the decided adapter beside the
    trivial baselines (a figure that does not beat a rule is not a gain)."""
    metrics = results.get("metrics", {})
    if not metrics:
        return
    print(f"  {'metric':<32}{'base':>10}{'adapter':>10}")
    for name, row in metrics.items():
        if isinstance(row, dict) and "base" in row and "adapter" in row:
            print(f"  {name:<32}{_fmt(row['base']):>10}{_fmt(row['adapter']):>10}")
    decided, baselines = results.get("decided") or {}, results.get("baselines") or {}
    mode = (results.get("decision_threshold") or {}).get("mode", "lead")
    decision = (results.get("decision") or {}).get("adapter" if mode == "lead" else f"adapter_{mode}") or {}
    if decided or baselines:
        names = list(baselines)
        print(f"\n  {'headline (test split)':<32}{'decided':>10}" + "".join(f"{n[:14]:>16}" for n in names))
        for key in ("citation_accuracy_multi", "refusal_f1", "needless_refusal_rate", "f1_gr", "answered_correctness"):
            cells = "".join(f"{_fmt((baselines[n].get('metrics') or baselines[n]).get(key)):>16}" for n in names)
            print(f"  {key:<32}{_fmt(decided.get(key)):>10}{cells}")
    modes = results.get("answer_modes") or {}
    if modes.get("test"):
        print(f"\n  {'answer modes (test split)':<32}" + "".join(f"{m:>12}" for m in modes["test"])
              + f"   shipped: {modes.get('shipped')} (chosen on validation)")
        for key in ("gold_span_recall", "token_f1", "faithfulness", "refusal_f1"):
            print(f"  {key:<32}" + "".join(f"{_fmt(f.get(key)):>12}" for f in modes["test"].values()))
    retrieval = results.get("retrieval") or {}
    ranked = {m: retrieval[m] for m in ("bm25", "dense", "hybrid") if retrieval.get(m)}
    if ranked:
        print(f"\n  {'retrieval (' + str(retrieval.get('corpus_chunks')) + ' chunks)':<32}"
              + "".join(f"{m:>10}" for m in ranked))
        for key in ("recall@1", "recall@3", "recall@5", "recall@10", "mrr"):
            print(f"  {key:<32}" + "".join(f"{_fmt(f.get(key)):>10}" for f in ranked.values()))
    if decision:
        print(f"  adapter ({mode} reading) refusal AUC {_fmt(decision.get('refusal_auc'))}, constrained citation accuracy (2+ chunks) "
              f"{_fmt(decision.get('constrained_citation_accuracy_multi'))}, threshold {_fmt(decision.get('refusal_threshold'))}")


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and value is not None else str(value)


def register(commands) -> None:
    parser = commands.add_parser(
        "quickstart", help="run the whole pipeline on the embedded default (local Hub, CPU)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file with QuickstartConfig keys")
    config_lib.add_dataclass_arguments(parser, QuickstartConfig)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    config = config_lib.load(QuickstartConfig, args.config, config_lib.overrides_from_args(args))
    return Pipeline(config).run()
