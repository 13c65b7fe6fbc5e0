"""`rag-de evaluate` settings as a typed dataclass (YAML + CLI flags through `rag_de.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from evaluation.thresholds import MAX_NEEDLESS_REFUSAL
from rag_de.base_model import EMBEDDED_MODEL_ID


@dataclass
class EvalConfig:
    base: str = field(default=EMBEDDED_MODEL_ID, metadata={
        "help": "base model (Hub id or folder); must match the adapter's base_model_name_or_path"})
    adapter: str = field(default="", metadata={"help": "PEFT adapter: Hub id or local folder (required)"})
    adapter_revision: str | None = field(default=None, metadata={"help": "adapter revision on the Hub"})
    dataset: str = field(default="org/spaces-rag-de", metadata={
        "help": "Hub dataset id, or a local folder holding <split>.parquet files"})
    dataset_revision: str | None = field(default=None, metadata={"help": "dataset revision on the Hub"})
    split: str = field(default="test", metadata={"help": "split to evaluate"})
    out: str = field(default="eval", metadata={"help": "output folder (results.json, plots, cache)"})
    run_dir: str | None = field(default=None, metadata={
        "help": "training run folder for loss curves (default: the adapter's or --out's parent if it has "
        "trainer_state.json)"})
    limit: int = field(default=0, metadata={"help": "evaluate only the first N examples (0 = all)"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generate/forward call"})
    max_new_tokens: int = field(default=96, metadata={"help": "generation length cap (greedy decoding)"})
    quantization: Literal["nf4", "fp4", "none"] = field(default="nf4", metadata={
        "help": "4-bit load of the base (as in training) or none"})
    compute_dtype: str = field(default="auto", metadata={
        "help": "dtype the 4-bit matmuls run in; auto = bfloat16 on CUDA, float32 on CPU (bf16 is emulated "
        "and several times slower on most CPUs)"})
    dtype: str = field(default="float32", metadata={"help": "dtype of the non-quantized weights"})
    device: str | None = field(default=None, metadata={"help": "cuda or cpu (default: cuda if available)"})
    dequantize_on_cpu: bool = field(default=True, metadata={
        "help": "on CPU, dequantize the 4-bit weights once after loading: the same values bitsandbytes computes "
        "with on every call, 1.1-1.3x faster generation and evidence passes on 2 cores "
        "(rag_de.modeling.dequantize_4bit_on_cpu; skipped when they would not fit in a quarter of the memory)"})
    compute_loss: bool = field(default=True, metadata={
        "help": "also compute teacher-forced eval loss and perplexity on the gold answers"})
    readings: list[Literal["lead", "evidence"]] = field(default_factory=lambda: ["lead", "evidence"], metadata={
        "help": "decision readings scored for base and adapter (answering/decision.py); the adapter's "
        "shipped reading is always scored. The quickstart scores only `evidence` (the lead reading of a "
        "20-step adapter measured at chance; ~1.5 min on 2 cores)"})
    base_readings: bool = field(default=True, metadata={
        "help": "score the readings for the base model too (false: only the adapter's; the quickstart saves "
        "~1 min on 2 cores so)"})
    threshold: Literal["shipped", "validation"] = field(default="shipped", metadata={
        "help": "refusal threshold of the decided pipeline: the one shipped with the adapter, or re-tuned on "
        "this dataset's validation split with the same rule as the BM25 baseline (for a new domain)"})
    answer_modes: list[Literal["extracted", "generated"]] = field(
        default_factory=lambda: ["extracted", "generated"], metadata={
            "help": "decided answer modes scored beside free generation (answering/answer.py: the cited chunk's "
            "sentence, or the adapter's text after the forced lead); the adapter's shipped mode is always "
            "scored and is the `decided` pipeline"})
    max_needless_refusal: float = field(default=MAX_NEEDLESS_REFUSAL, metadata={
        "help": "thresholds tuned here (the BM25 rule's, --threshold validation) refuse at most this share of the "
        "validation split's answerable questions (evaluation/thresholds.py; 1.0 = no limit)"})
    retrieval: bool = field(default=True, metadata={
        "help": "also score the demo's retriever on the split (recall@1/3/5/10, MRR of BM25, and of dense and "
        "hybrid with --dense-model; evaluation/retrieval_eval.py): no language model, ~1 s for BM25"})
    dense_model: str | None = field(default=None, metadata={
        "help": "dense encoder (Hub id or folder) for the dense and hybrid retrieval figures; unset: BM25 only"})
    dense_prefixes: Literal["e5", "none"] = field(default="e5", metadata={
        "help": "e5: \"query: \" / \"passage: \" before questions / chunks; none: plain text"})
    worst_examples: int = field(default=5, metadata={"help": "examples per failure kind in error_analysis.md"})
    hallucination_threshold: float = field(default=0.5, metadata={
        "help": "an answer whose faithfulness proxy is below this counts as hallucinated content"})
