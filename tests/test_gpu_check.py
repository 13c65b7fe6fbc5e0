"""`scripts/gpu_check.sh --smoke`: the prepared GPU check, run on the CPU with a tiny Mistral-shaped model, so
the script (and the GPU code paths it drives) cannot rot between the sessions that have a GPU.

Every step must be present in $OUT/figures.jsonl with status ok and its figures as numbers; the figures
that caught bugs are asserted exactly (tokens of every micro-batch counted, the longest-sequence rows
sized so the length tried is the length trained).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

pytestmark = pytest.mark.slow

STEPS = ["install", "env", "bench_train", "bench_demo", "pipeline", "train_longest"]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "OUT": str(tmp / "out"), "GPU_CHECK_WORK": str(tmp / "work"), "PYTHON": sys.executable}
    proc = subprocess.run([str(REPO_ROOT / "scripts" / "gpu_check.sh"), "--smoke"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=5700)
    lines = (tmp / "out" / "figures.jsonl").read_text().splitlines()
    records = {r["step"]: r for r in map(json.loads, lines)}
    return proc, records, tmp / "out"


def test_every_step_is_recorded_and_ok(smoke):
    proc, records, out = smoke
    assert list(records) == STEPS, proc.stdout[-3000:]
    bad = {name: r.get("log_tail") for name, r in records.items() if r["status"] not in ("ok", "skipped")}
    assert not bad, bad
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert records["install"]["status"] == "skipped"   # smoke: no wheels, the test environment has them
    for name in STEPS[1:]:
        r = records[name]
        assert r["status"] == "ok" and _number(r["seconds"]) and 0 < r["seconds"] <= r["limit_s"] + 30
        assert (out / f"{name}.log").exists()
    assert records["env"]["figures"]["missing"] == []


def test_bench_train_reference_vs_preset_figures(smoke):
    figures = smoke[1]["bench_train"]["figures"]
    ref = figures["variants"]["reference (padded b4, fp32 non-4bit, sdpa)"]
    pre = figures["variants"]["preset (packed 4096, flex, liger, bf16)"]
    for row in (ref, pre):
        for key in ("s_per_step", "real_tokens_per_s", "peak_memory_gib", "real_tokens_per_step", "padding_share"):
            assert _number(row[key]), (key, row)
        assert row["real_tokens_per_s"] > 0 and row["peak_memory_gib"] > 0
    assert _number(figures["preset_vs_reference"]) and figures["preset_vs_reference"] > 0
    assert pre["packing"] is True and ref["packing"] is False and pre["padding_share"] == 0
    # the preset accumulates 4 packed rows of <= 512 tokens per step: all four are counted, not just the last
    assert pre["real_tokens_per_step"] > 512


def test_longest_sequence_trains_the_length_it_names(smoke):
    figures = smoke[1]["train_longest"]["figures"]
    assert figures["longest_seq_tokens"] == 512   # the one tiny length tried; rows once overshot it and were dropped
    assert _number(figures["longest_tried"]["512"]["peak_memory_gib"])


def test_bench_demo_fast_path_matches_plain_generate(smoke):
    figures = smoke[1]["bench_demo"]["figures"]
    for key in ("plain_tokens_per_s", "fast_tokens_per_s", "fast_vs_plain", "load_s", "retrieval_p50_ms"):
        assert _number(figures[key]) and figures[key] > 0, key
    assert figures["greedy_identical"] is True
    assert figures["compiled"] is False   # the demo compiles on CUDA only


def test_pipeline_trains_pushes_evaluates_and_cards(smoke):
    figures = smoke[1]["pipeline"]["figures"]
    assert "error" not in figures and "failed_stage" not in figures
    assert set(figures["stages_s"]) == {"hub", "build", "publish", "base_model", "train", "evaluate", "card",
                                        "hub_check"}
    assert all(_number(v) for v in figures["stages_s"].values())
    train = figures["train"]
    assert train["global_step"] == 1 and train["quantization"] == "nf4"
    for key in ("tokens_per_s", "peak_memory_gb", "train_loss", "train_tokens"):
        assert _number(train[key]) and train[key] > 0, key
    assert figures["hub"]["adapter_pushed"] and figures["hub"]["card_has_model_index"]
    assert figures["hub"]["card_names_base"]
    for name in ("citation_accuracy", "refusal_f1", "eval_loss"):
        assert _number(figures["eval"][name]["base"]) and _number(figures["eval"][name]["adapter"]), name
