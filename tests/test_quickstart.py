"""Command 1 (`scripts/quickstart.sh`) end to end, headless, with a short training budget.

Runs the real script (set-up is a no-op when .venv is current), kills it during training, runs it
again and checks that it resumed instead of starting over; then restarts a Hub on the quickstart's data
dir and checks every artifact through the real clients. (One run serves both checks: each full run of
the pipeline costs minutes.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import REPO_ROOT, free_port, start_hub

pytestmark = pytest.mark.slow

# A short budget: batch 1, short rows, a handful of steps, a few test examples; the answer modes measured on
# 8 validation rows with 24 new tokens (all 38 rows at 64 tokens: ~4 min of the test's CI time).
SHORT_TRAIN = ("--training.per_device_train_batch_size=1,--training.gradient_accumulation_steps=1,"
               "--training.answer_mode_rows=8,--training.answer_max_new_tokens=24")


def quickstart(workdir: Path, *extra: str, **popen) -> subprocess.Popen:
    env = dict(os.environ)
    for key in ("HF_ENDPOINT", "HF_TOKEN"):  # the quickstart starts and points at its own Hub
        env.pop(key, None)
    cmd = [str(REPO_ROOT / "scripts" / "quickstart.sh"), "--headless", "--workdir", str(workdir),
           "--hub_data_dir", str(workdir / "hub"), "--hub_port", str(free_port()), "--eval_limit", "4", *extra]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=popen.pop("stdout", None),
                            stderr=subprocess.STDOUT, start_new_session=True, text=True, **popen)


def test_killed_quickstart_resumes_and_publishes_every_artifact(tmp_path):
    """Command 1 killed during training (as a closed terminal would), then run again: the finished stages
    are reused, training resumes from its checkpoint, and every artifact lands on the local Hub."""
    steps = 4
    # `--train_args=...` in one word: its value starts with "--", which argparse would read as a flag
    args = ("--max_steps", str(steps), f"--train_args={SHORT_TRAIN},--training.save_steps=2,--training.eval_steps=2")
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        proc = quickstart(tmp_path, *args, stdout=log)
        deadline = time.time() + 1200
        while not list((tmp_path / "run").glob("checkpoint-*")):
            assert proc.poll() is None, log_path.read_text()[-6000:]
            assert time.time() < deadline, "no checkpoint within the time limit"
            time.sleep(1)
        time.sleep(1)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: script, stages and the Hub
        proc.wait()
    assert not (tmp_path / "run" / "train_summary.json").exists()
    first = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "run").glob("checkpoint-*"))

    log_path = tmp_path / "second.log"
    with open(log_path, "w") as log:
        proc = quickstart(tmp_path, *args, stdout=log)
        assert proc.wait(timeout=1500) == 0, log_path.read_text()[-6000:]
    output = log_path.read_text()
    for stage in ("[hub]", "[build]", "[publish]", "[train]", "[evaluate]", "[card]", "[deploy]", "[done]"):
        assert stage in output, f"stage {stage} missing from the quickstart output"
    assert "reusing" in output and "resuming" in output
    assert "answers written by: extractive" in output      # the quickstart says which writer made the answers
    assert "rag-de build" not in output, "the finished build stage ran again"
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["global_step"] == steps
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    logged_steps = [row["step"] for row in state["log_history"] if "loss" in row]
    assert first and min(first) >= 2 and logged_steps[-1] == steps
    assert logged_steps.count(1) == 1, "the resumed run started over"

    port = free_port()
    hub = start_hub(tmp_path / "hub", port)
    try:
        from huggingface_hub import HfApi, ModelCard, SpaceCard

        api = HfApi(endpoint=f"http://127.0.0.1:{port}", token=(tmp_path / "hub" / "token").read_text().strip())
        data_files = set(api.list_repo_files("org/spaces-rag-de", repo_type="dataset"))
        for split in ("train", "validation", "test"):
            assert any(f.startswith("data/") and split in f and f.endswith(".parquet") for f in data_files), split
        assert "README.md" in data_files

        adapter_files = set(api.list_repo_files("org/smollm2-135m-rag-de-qlora"))
        assert {"adapter_config.json", "adapter_model.safetensors", "README.md",
                "rag_de_decision.json"} <= adapter_files
        decision_file = api.hf_hub_download("org/smollm2-135m-rag-de-qlora", "rag_de_decision.json")
        decision = json.loads(Path(decision_file).read_text())
        assert decision["answer_mode"] in decision["answer_modes"]   # the measured mode ships with the adapter
        assert {m["rows"] for m in decision["answer_modes"].values()} == {8}
        card = ModelCard.load(api.hf_hub_download("org/smollm2-135m-rag-de-qlora", "README.md"))
        assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
        results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
        assert results["metrics"] and card.data.eval_results, "the model card carries no evaluation results"
        names = {r.metric_type for r in card.data.eval_results}
        assert names == {k for k, row in results["metrics"].items() if row.get("adapter") is not None}
        assert "citation_accuracy" in names

        space_files = set(api.list_repo_files("org/spaces-rag-de-demo", repo_type="space"))
        assert {"app.py", "requirements.txt", "README.md"} <= space_files
        space_card = SpaceCard.load(api.hf_hub_download("org/spaces-rag-de-demo", "README.md", repo_type="space"))
        assert space_card.data.sdk == "gradio"
    finally:
        hub.terminate()
        hub.wait(10)
