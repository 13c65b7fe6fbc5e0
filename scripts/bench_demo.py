"""Benchmark of the demo's hot paths: model load, time to first token, decode speed, retrieval latency.

CPU (default): the default base model (embedded SmolLM2-135M-Instruct) loaded as the demo loads it
(4-bit NF4 via `rag_de.modeling`) with a random LoRA adapter (or --adapter), decoded by the demo's CPU
path (plain `generate`) and, for comparison, by the static-cache loop (uncompiled on CPU); and BM25
retrieval over 10k synthetic German chunks (p50/p95).

--gpu: the same for a Mistral-7B-shaped model (random weights from `MistralConfig()`, saved once to
--work-dir, no download) in 4-bit NF4 with a random LoRA adapter: plain `generate` vs the demo's fast
path (static KV cache + torch.compile "reduce-overhead", i.e. CUDA graphs), with a check that both give
the same greedy tokens. Target: fast path >= 4x plain tokens/s.

    python scripts/bench_demo.py                 # CPU
    python scripts/bench_demo.py --gpu           # one CUDA GPU (about 5 GB GPU memory, 15 GB disk)
    python scripts/bench_demo.py --gpu --tiny    # the same path on a tiny Mistral shape (CUDA, else CPU)

`--gpu --tiny` (scripts/gpu_check.sh --smoke) keeps the GPU code path from rotting on a machine without a
GPU: on a CPU the fast path runs uncompiled (the demo compiles on CUDA only), in fp32 compute.
`--json PATH` appends one JSON line with the figures (what scripts/gpu_check.sh collects).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_builder.contract import Chunk, render_prompt_text  # noqa: E402
from demo_space.generation import Generator, Sampling, load_model  # noqa: E402
from demo_space.retrieval import ChunkIndex  # noqa: E402
from demo_space.settings import DemoConfig  # noqa: E402
from rag_de.config import add_dataclass_arguments, from_dict, overrides_from_args  # noqa: E402

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SUBJECTS = ["Programmierung", "Statistik", "Datenbanken", "Lineare Algebra", "Maschinelles Lernen", "Analysis",
            "Visualisierung", "Datenethik", "Cloud Computing", "Optimierung", "Zeitreihen", "Textanalyse"]
SENTENCES = [
    "Das Modul {code} {name} umfasst {ects} ECTS-Punkte und wird im {sem}. Semester angeboten.",
    "Die Prüfung im Modul {name} ist eine Klausur von {minutes} Minuten.",
    "Verantwortlich für {code} ist Prof. Dr. {person}, die auch die Vorlesung hält.",
    "Der Arbeitsaufwand beträgt {hours} Stunden, davon {presence} Stunden Präsenzzeit.",
    "Voraussetzung für {name} sind Grundkenntnisse in {other}.",
    "Die Übungen zu {name} finden wöchentlich in kleinen Gruppen statt.",
]
PEOPLE = ["Anna Keller", "Matthias Brandl", "Sabine Lorenz", "Tobias Reinhardt", "Eva Schulte", "Jonas Weber"]


@dataclass
class BenchConfig:
    chunks: int = field(default=10_000, metadata={"help": "synthetic chunks in the retrieval index"})
    queries: int = field(default=300, metadata={"help": "retrieval queries timed"})
    top_k: int = field(default=3, metadata={"help": "chunks retrieved per query and put into the prompt"})
    new_tokens: int = field(default=32, metadata={"help": "tokens decoded per timed answer (EOS ignored)"})
    repeats: int = field(default=2, metadata={"help": "timed generations per path (best is reported)"})
    lora_rank: int = field(default=16, metadata={"help": "rank of the random LoRA adapter (when no --adapter)"})
    gpu_layers: int = field(default=32, metadata={"help": "--gpu: decoder layers of the Mistral-7B-shaped model"})
    work_dir: str = field(default="", metadata={"help": "--gpu: folder for the random 7B model (default: temp)"})
    seed: int = field(default=0, metadata={"help": "random seed"})


# --gpu --tiny: Mistral's architecture at toy size (MistralConfig overrides), for the smoke test
TINY_MISTRAL = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
                "num_hidden_layers": 2}


def synthetic_chunks(n: int, seed: int) -> list[Chunk]:
    rng = random.Random(seed)
    chunks = []
    for i in range(n):
        name = f"{rng.choice(SUBJECTS)} {rng.choice(['I', 'II', 'für Data Science', 'in der Praxis'])}"
        values = dict(code=f"DS-{100 + i % 900}", name=name, ects=rng.choice([5, 10]), sem=rng.randint(1, 6),
                      minutes=rng.choice([60, 90, 120]), person=rng.choice(PEOPLE), hours=rng.choice([150, 300]),
                      presence=rng.choice([45, 60, 90]), other=rng.choice(SUBJECTS))
        text = " ".join(s.format(**values) for s in rng.sample(SENTENCES, 4))
        chunks.append(Chunk(id=f"syn-{i}#0", text=text, title=name, source=f"{values['code']}.md",
                            metadata={"module_code": values["code"], "ects": values["ects"]}))
    return chunks


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_retrieval(bench_config: BenchConfig) -> dict:
    chunks = synthetic_chunks(bench_config.chunks, bench_config.seed)
    start = time.perf_counter()
    index = ChunkIndex(chunks)
    build_s = time.perf_counter() - start
    rng = random.Random(bench_config.seed + 1)
    questions = [f"Wie viele ECTS hat das Modul {rng.choice(SUBJECTS)} und wer prüft DS-{rng.randint(100, 999)}?"
                 for _ in range(bench_config.queries)]
    index.search(questions[0], bench_config.top_k)  # warm-up
    latencies = []
    for q in questions:
        t = time.perf_counter()
        index.search(q, bench_config.top_k)
        latencies.append((time.perf_counter() - t) * 1000)
    return {"build_s": build_s, "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95),
            "index": index}


class TimingStreamer:
    """A `generate` streamer that timestamps every generated token (the first `put` is the prompt)."""

    def __init__(self):
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value):
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self):
        pass


def time_plain(gen: Generator, prompt: str, n: int) -> tuple[float, float, list[int]]:
    """(time to first token s, decode tokens/s, ids) of the plain `generate` path."""
    import torch

    import copy

    input_ids = gen.encode(prompt)
    streamer = TimingStreamer()
    # No EOS: decode exactly n tokens, like the fast path with stop_at_eos=False (same greedy choices).
    config = copy.deepcopy(gen.model.generation_config)
    config.eos_token_id = None
    config.update(max_new_tokens=n, do_sample=False, temperature=None, top_p=None, top_k=None,
                  pad_token_id=gen.tokenizer.pad_token_id)
    start = time.perf_counter()
    with torch.inference_mode():
        out = gen.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer,
                                 generation_config=config)
    _sync()
    return _rates(start, streamer.times) + (out[0, input_ids.shape[1]:].tolist(),)


def time_fast(gen: Generator, prompt: str, n: int) -> tuple[float, float, list[int]]:
    """The same for the demo's static-cache path (compiled on CUDA)."""
    input_ids = gen.encode(prompt)
    times, ids = [], []
    start = time.perf_counter()
    for ids in gen._fast_token_ids(input_ids, Sampling(max_new_tokens=n), use_adapter=True, stop_at_eos=False):
        times.append(time.perf_counter())
    _sync()
    times[-1] = time.perf_counter()
    return _rates(start, times) + (list(ids),)


def _rates(start: float, times: list[float]) -> tuple[float, float]:
    ttft = times[0] - start
    tps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return ttft, tps


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def add_random_lora(model, rank: int, seed: int):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, lora_dropout=0.0,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])).eval()


def best(fn, repeats: int):
    runs = [fn() for _ in range(repeats)]
    return min(runs, key=lambda r: r[0]), max(runs, key=lambda r: r[1])


def run_model_bench(gen: Generator, prompt: str, bench_config: BenchConfig, paths: list[str]) -> dict:
    results = {}
    for path in paths:
        timer = time_plain if path == "plain generate" else time_fast
        if path != "plain generate" and gen.compile:
            t = time.perf_counter()
            timer(gen, prompt, bench_config.new_tokens)  # compiles and captures the CUDA graphs
            results["compile_s"] = time.perf_counter() - t
        fastest_ttft, fastest_tps = best(lambda: timer(gen, prompt, bench_config.new_tokens), bench_config.repeats)
        results[path] = {"ttft_s": fastest_ttft[0], "tokens_per_s": fastest_tps[1], "ids": fastest_tps[2]}
    return results


def print_model_results(title: str, load_s: float, prompt_tokens: int, results: dict, bench_config: BenchConfig) -> None:
    print(f"\n== {title}")
    print(f"load (base + adapter): {load_s:8.1f} s   prompt: {prompt_tokens} tokens, "
          f"decode: {bench_config.new_tokens} tokens (greedy, EOS ignored), best of {bench_config.repeats}")
    if "compile_s" in results:
        print(f"fast path compile + graph capture (first request): {results['compile_s']:.1f} s")
    paths = [k for k in results if k != "compile_s"]
    base = results[paths[0]]["tokens_per_s"]
    print(f"{'path':<34}{'TTFT s':>10}{'tokens/s':>12}{'ratio':>9}")
    for path in paths:
        r = results[path]
        print(f"{path:<34}{r['ttft_s']:>10.3f}{r['tokens_per_s']:>12.1f}{r['tokens_per_s'] / base:>8.2f}x")
    if len(paths) > 1:
        a, b = results[paths[0]]["ids"], results[paths[1]]["ids"]
        same = a == b
        diverge = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        print(f"greedy output identical: {'yes' if same else f'NO (first difference at token {diverge})'}")


def cpu_bench(bench_config: BenchConfig, demo_config: DemoConfig, retrieval: dict) -> None:
    """The demo's 4-bit load on CPU, then the same model unquantized for comparison (RAG_DE_QUANTIZATION=none)."""
    import torch

    question = "Wie viele ECTS hat das Modul Statistik I?"
    hits = retrieval["index"].search(question, bench_config.top_k)
    for quantization, paths in (("nf4", ["plain generate", "static cache (no compile on CPU)"]),
                                ("none", ["plain generate"])):
        run = DemoConfig(**{**vars(demo_config), "device": "cpu", "quantization": quantization,
                              "fast_generation": "on"})
        start = time.perf_counter()
        model, tokenizer = load_model(run)
        if not run.adapter:
            model = add_random_lora(model, bench_config.lora_rank, bench_config.seed)
        load_s = time.perf_counter() - start
        gen = Generator(model, tokenizer, run)
        prompt = render_prompt_text(tokenizer, question, [h.chunk for h in hits])
        results = run_model_bench(gen, prompt, bench_config, paths)
        print_model_results(f"{run.base_model} on CPU ({torch.get_num_threads()} threads), quantization "
                            f"{quantization}, compute float32, adapter: "
                            f"{run.adapter or f'random LoRA r={bench_config.lora_rank}'} (the demo decodes with plain "
                            "generate on CPU)", load_s, len(gen.encode(prompt)[0]), results, bench_config)
        del model, gen


def gpu_bench(bench_config: BenchConfig, demo_config: DemoConfig, retrieval: dict, tiny: bool = False) -> dict:
    import torch

    on_cuda = torch.cuda.is_available()
    if not on_cuda and not tiny:
        raise SystemExit("--gpu needs a CUDA GPU; run without --gpu for the CPU benchmark (or add --tiny)")
    work = Path(bench_config.work_dir or tempfile.mkdtemp(prefix="bench-mistral7b-"))
    shape = TINY_MISTRAL if tiny else {"num_hidden_layers": bench_config.gpu_layers}
    tag = "tiny" if tiny else f"7b-{bench_config.gpu_layers}l"
    model_dir = random_mistral(work / f"mistral-{tag}-random", bench_config, retrieval["index"], shape)
    device = "cuda" if on_cuda else "cpu"
    gpu_demo_config = DemoConfig(base_model=str(model_dir), adapter=None, dataset=None, device=device,
                                quantization="nf4", compute_dtype="bfloat16" if on_cuda else "float32",
                                compile_mode=demo_config.compile_mode)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    model, tokenizer = load_model(gpu_demo_config)
    model = add_random_lora(model, bench_config.lora_rank, bench_config.seed)
    _sync()
    load_s = time.perf_counter() - start
    gen = Generator(model, tokenizer, DemoConfig(**{**vars(gpu_demo_config), "fast_generation": "on"}))
    hits = retrieval["index"].search("Wie viele ECTS hat das Modul Statistik I?", bench_config.top_k)
    prompt = render_prompt_text(tokenizer, "Wie viele ECTS hat das Modul Statistik I?", [h.chunk for h in hits])
    fast_name = "fast: static cache + compile" if gen.compile else "fast: static cache (uncompiled)"
    results = run_model_bench(gen, prompt, bench_config, ["plain generate", fast_name])
    name = torch.cuda.get_device_name() if on_cuda else f"CPU ({torch.get_num_threads()} threads)"
    title = "tiny Mistral-shaped (2 layers, width 64" if tiny else f"Mistral-7B-shaped ({bench_config.gpu_layers} layers"
    print_model_results(f"{title}, random weights) on {name}, random LoRA r={bench_config.lora_rank}", load_s,
                        len(gen.encode(prompt)[0]), results, bench_config)
    plain, fast = results["plain generate"], results[fast_name]
    ratio = fast["tokens_per_s"] / plain["tokens_per_s"]
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_cuda else None
    print(f"peak GPU memory: {f'{peak:.1f} GiB' if peak is not None else 'n/a (CPU)'}; "
          f"target fast/plain >= 4x: {'met' if ratio >= 4 else 'NOT met'} ({ratio:.1f}x)")
    return {"bench": "demo", "device": name, "shape": title + ")", "load_s": load_s,
            "prompt_tokens": len(gen.encode(prompt)[0]), "new_tokens": bench_config.new_tokens,
            "compiled": gen.compile, "compile_s": results.get("compile_s"),
            "plain_tokens_per_s": plain["tokens_per_s"], "fast_tokens_per_s": fast["tokens_per_s"],
            "plain_ttft_s": plain["ttft_s"], "fast_ttft_s": fast["ttft_s"], "fast_vs_plain": ratio,
            "greedy_identical": plain["ids"] == fast["ids"], "peak_gpu_gib": peak}


def random_mistral(path: Path, bench_config: BenchConfig, index: ChunkIndex, shape: dict) -> Path:
    """Random weights in the shape of Mistral-7B (`MistralConfig()` defaults + `shape`), saved once, bf16."""
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig

    if (path / "config.json").exists():
        return path
    tokenizer = synthetic_tokenizer([c.text for c in index.chunks[:2000]])
    config = MistralConfig(**{"sliding_window": None, "max_position_embeddings": 32768, "vocab_size": 32000,
                              "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
                              "bos_token_id": None, "tie_word_embeddings": False, **shape})
    print(f"[bench] building random Mistral-shaped weights in {path} (once) ...", flush=True)
    torch.manual_seed(bench_config.seed)
    on_cuda = torch.cuda.is_available()
    with torch.device("cuda" if on_cuda else "cpu"):  # on the GPU directly in bf16 (14.5 GB), not fp32 on the CPU
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    del model
    if on_cuda:
        torch.cuda.empty_cache()
    return path


def synthetic_tokenizer(texts: list[str]):
    """A byte-level BPE (8k merges) with a ChatML template, trained on the synthetic German chunks."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from dataset_builder.contract import SYSTEM_PROMPT

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=8000, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts + [SYSTEM_PROMPT], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="benchmark the Mistral-7B-shaped model on CUDA")
    parser.add_argument("--adapter", default=None, help="CPU: a real adapter (Hub id/folder) instead of random LoRA")
    parser.add_argument("--base-model", default=None, help="CPU: base model (default: the demo's default)")
    parser.add_argument("--tiny", action="store_true",
                        help="--gpu on a tiny Mistral-shaped model (CUDA if present, else CPU): a smoke test")
    parser.add_argument("--json", default=None, help="append the figures as one JSON line to this file")
    add_dataclass_arguments(parser, BenchConfig, "benchmark settings")
    args = parser.parse_args(argv)
    bench_config = from_dict(BenchConfig, overrides_from_args(args))
    demo_config = DemoConfig(dataset=None, adapter=args.adapter, **({"base_model": args.base_model}
                                                                    if args.base_model else {}))

    retrieval = bench_retrieval(bench_config)
    print(f"== BM25 retrieval over {bench_config.chunks:,} synthetic German chunks (top-{bench_config.top_k}, "
          f"{bench_config.queries} queries, one at a time)")
    print(f"index build: {retrieval['build_s']:.2f} s   latency p50: {retrieval['p50_ms']:.2f} ms   "
          f"p95: {retrieval['p95_ms']:.2f} ms")
    figures = {"retrieval_chunks": bench_config.chunks, "retrieval_p50_ms": retrieval["p50_ms"],
               "retrieval_p95_ms": retrieval["p95_ms"]}
    if args.gpu:
        figures.update(gpu_bench(bench_config, demo_config, retrieval, tiny=args.tiny))
    else:
        cpu_bench(bench_config, demo_config, retrieval)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"bench": "demo", **figures}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
