"""Serving exports on the embedded SmolLM2-135M: merged vs base + adapter, GGUF f32/f16/q8_0 vs merged.

For each export it prints, side by side: export time, size, max |logit difference| over every prompt
position, and how many greedy answers (the project's batched generation, `evaluation.inference`) are
identical, on the first rows of the test split built from the shipped sample data with the prompt contract.
The GGUF files are read back with transformers (`gguf_file=`), tokenizer included.

Without --adapter a random LoRA adapter is made on the embedded base with the training recipe's shape (r=12,
alpha=10, every linear layer) and B drawn from U(-b, b), b = --lora-b (default 0.02: about what 20 Adam steps at
the CPU preset's lr 1e-3 can move a zero-initialized B), so it perturbs the model like the quickstart's
fine-tune; pass a trained adapter (e.g. `--adapter org/smollm2-135m-rag-de-qlora` with HF_ENDPOINT and HF_TOKEN
of the quickstart's Hub) to measure that one.

    python scripts/bench_export.py                       # 8 rows, f32 f16 q8_0
    python scripts/bench_export.py --rows 2 --dtypes f32 --json out.json   # what the slow test runs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dataset_builder.build_config import CPU_BUILD_CONFIG  # noqa: E402
from rag_de.base_model import EMBEDDED_MODEL_ID  # noqa: E402


def random_adapter(base: str, out: Path, b: float, seed: int = 0) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from rag_de.modeling import LoadQuantizationConfig, load_causal_lm

    torch.manual_seed(seed)
    model = load_causal_lm(base, LoadQuantizationConfig(kind="none"), dtype="float32", device="cpu")
    peft_model = get_peft_model(model, LoraConfig(r=12, lora_alpha=10, target_modules="all-linear",
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.uniform_(param, -b, b)
    peft_model.save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out


def test_rows(data: Path | None, work: Path, n: int) -> list[dict]:
    import subprocess

    import pandas as pd

    if data is None:
        data = work / "data"
        subprocess.run([sys.executable, "-m", "rag_de", "build", "--config", str(CPU_BUILD_CONFIG), "--out", str(data)],
                       check=True, stdout=subprocess.DEVNULL)
    return pd.read_parquet(data / "test.parquet").head(n).to_dict("records")


def position_logits(model, tokenizer, texts):
    import torch

    with torch.inference_mode():
        return [model(**tokenizer(t, return_tensors="pt", add_special_tokens=False)).logits.double() for t in texts]


def max_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", help="adapter to export (default: a random LoRA on the embedded base)")
    parser.add_argument("--data", type=Path, help="a `rag-de build` folder (default: build the shipped sample)")
    parser.add_argument("--rows", type=int, default=8, help="first N rows of the test split")
    parser.add_argument("--new-tokens", type=int, default=48, help="greedy answer length cap")
    parser.add_argument("--dtypes", default="f32,f16,q8_0", help="GGUF types to export and compare")
    parser.add_argument("--lora-b", type=float, default=0.02, help="the random adapter's B ~ U(-b, b)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (exports, ~2 GB) for a look")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dataset_builder.contract import contexts_from_column, render_prompt_text
    from answering.generate import generate_batch
    from rag_de.modeling import LoadQuantizationConfig, load_adapter, load_causal_lm, load_tokenizer
    from serving.config import GGUFExportConfig, MergedExportConfig
    from serving.export import export_gguf, export_merged

    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    adapter = args.adapter or str(random_adapter(EMBEDDED_MODEL_ID, work / "adapter", args.lora_b))
    rows = test_rows(args.data, work, args.rows)
    figures: dict = {"rows": len(rows), "new_tokens": args.new_tokens, "adapter": args.adapter or
                     f"random LoRA r=12 alpha=10 all-linear, B~U(+-{args.lora_b})", "exports": {}}

    started = time.perf_counter()
    merged_facts = export_merged(MergedExportConfig(adapter=adapter, out=str(work / "merged"), device="cpu"))
    merged_s = time.perf_counter() - started
    tokenizer = load_tokenizer(str(work / "merged"))   # left padding, as evaluation batches
    texts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in rows]

    base = load_causal_lm(merged_facts["base"],
                          LoadQuantizationConfig(kind="none"), dtype="float32", device="cpu", tokenizer=tokenizer)
    reference = load_adapter(base, adapter).eval()
    ref_logits = position_logits(reference, tokenizer, texts)
    started = time.perf_counter()
    ref_answers = generate_batch(reference, tokenizer, texts, args.new_tokens)
    ref_gen_s = time.perf_counter() - started
    with reference.disable_adapter():
        base_answers = generate_batch(reference, tokenizer, texts, args.new_tokens)
        base_logits = position_logits(reference, tokenizer, texts)
    figures["adapter_logit_shift"] = max_diff(ref_logits, base_logits)   # how much the adapter changes the model
    del reference, base
    # The same merge in float64: shows the merge itself is exact, and how far each fp32 path is from the exact
    # values (the fp32 rounding noise any two ways of computing the same function differ by).
    base64 = load_causal_lm(merged_facts["base"], LoadQuantizationConfig(kind="none"), dtype="float32", device="cpu",
                            tokenizer=tokenizer).to(torch.float64)
    reference64 = load_adapter(base64, adapter).eval()
    ref64 = position_logits(reference64, tokenizer, texts)
    merged64 = position_logits(reference64.merge_and_unload(), tokenizer, texts)
    del reference64, base64

    merged = AutoModelForCausalLM.from_pretrained(work / "merged", dtype=torch.float32).eval()
    merged_logits = position_logits(merged, tokenizer, texts)
    started = time.perf_counter()
    merged_answers = generate_batch(merged, tokenizer, texts, args.new_tokens)
    merged_gen_s = time.perf_counter() - started
    del merged
    figures["adapter_changes_answers"] = sum(a != b for a, b in zip(base_answers, ref_answers))
    figures["float64"] = {"merged_vs_base_plus_adapter": max_diff(ref64, merged64),
                          "base_plus_adapter_fp32_vs_float64": max_diff(ref_logits, ref64),
                          "merged_fp32_vs_float64": max_diff(merged_logits, merged64),
                          "max_abs_logit": max(x.abs().max().item() for x in ref64)}
    figures["exports"]["merged fp32"] = {
        "export_s": round(merged_s, 1), "bytes": (work / "merged" / "model.safetensors").stat().st_size,
        "vs": "base + adapter", "max_abs_logit_diff": max_diff(ref_logits, merged_logits),
        "identical_answers": sum(a == b for a, b in zip(ref_answers, merged_answers)), "generate_s": round(merged_gen_s, 1),
        "reference_generate_s": round(ref_gen_s, 1)}

    for dtype in [d for d in args.dtypes.split(",") if d]:
        path = work / f"gguf-{dtype}" / f"smollm2-rag-de-{dtype}.gguf"
        started = time.perf_counter()
        facts = export_gguf(GGUFExportConfig(adapter=adapter, out=str(path), dtype=dtype, device="cpu"))
        export_s = time.perf_counter() - started
        started = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        gguf_tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        gguf_tokenizer.pad_token, gguf_tokenizer.padding_side = tokenizer.pad_token, "left"
        load_s = time.perf_counter() - started
        same_ids = all(gguf_tokenizer(t, add_special_tokens=False)["input_ids"] ==
                       tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts)
        started = time.perf_counter()
        answers = generate_batch(model, gguf_tokenizer, texts, args.new_tokens)
        figures["exports"][f"gguf {dtype}"] = {
            "export_s": round(export_s, 1), "bytes": facts["bytes"], "vs": "merged", "load_s": round(load_s, 1),
            "same_token_ids": same_ids, "max_abs_logit_diff": max_diff(merged_logits, position_logits(model, tokenizer, texts)),
            "identical_answers": sum(a == b for a, b in zip(merged_answers, answers)),
            "generate_s": round(time.perf_counter() - started, 1), "tensor_types": facts["tensor_types"]}
        del model

    n = len(rows)
    print(f"\nserving exports of {figures['adapter']} on {EMBEDDED_MODEL_ID}, {n} test rows, "
          f"{args.new_tokens} new tokens, CPU fp32 (the adapter changes {figures['adapter_changes_answers']}/{n} "
          "base answers)")
    print(f"{'export':<13}{'vs':<16}{'export s':>9}{'size MiB':>10}{'max|dlogit|':>13}{'same answers':>14}{'gen s':>8}")
    for name, f in figures["exports"].items():
        print(f"{name:<13}{f['vs']:<16}{f['export_s']:>9.1f}{f['bytes'] / 2**20:>10.1f}{f['max_abs_logit_diff']:>13.2e}"
              f"{f['identical_answers']:>9}/{n:<4}{f['generate_s']:>8.1f}")
    f64 = figures["float64"]
    print(f"float64 merge: merged vs base + adapter {f64['merged_vs_base_plus_adapter']:.1e}; fp32 noise: base + adapter "
          f"{f64['base_plus_adapter_fp32_vs_float64']:.1e}, merged {f64['merged_fp32_vs_float64']:.1e} from the float64 "
          f"logits (|logit| up to {f64['max_abs_logit']:.0f})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.keep:
        print(f"exports kept in {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
