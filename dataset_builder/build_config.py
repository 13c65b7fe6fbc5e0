"""`BuildConfig`: every knob of `rag-de build`, with documented defaults (YAML via --config, then flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from dataset_builder.chunking import DEFAULT_MAX_TOKENS
from rag_de.base_model import EMBEDDED_MODEL_ID

# The build the CPU training preset is sized for (the quickstart's, and `rag-de train` without --dataset).
CPU_BUILD_CONFIG = Path(__file__).resolve().parent / "configs" / "cpu-quickstart.yaml"


@dataclass
class TransformersWriterConfig:
    model: str = field(default=EMBEDDED_MODEL_ID, metadata={
        "help": "local folder or Hub id of a causal LM with a chat template (the embedded SmolLM2 by default)"})
    batch_size: int = field(default=8, metadata={"help": "prompts generated together (left padding)"})
    max_new_tokens: int = field(default=96, metadata={"help": "generation limit per answer"})
    dtype: str = field(default="auto", metadata={"help": "torch dtype: auto, float32, bfloat16, float16"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    load_in_4bit: bool = field(default=False, metadata={"help": "load the writer model in 4-bit NF4 (bitsandbytes)"})


@dataclass
class OpenAIWriterConfig:
    base_url: str = field(default="http://127.0.0.1:8000/v1", metadata={
        "help": "OpenAI-compatible endpoint (vLLM, TGI, llama.cpp server, HF Inference Providers) up to /v1"})
    model: str = field(default="", metadata={"help": "model name sent in each request"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "name of the environment variable holding the API key (the key itself never goes in a config)"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight at once"})
    max_retries: int = field(default=4, metadata={"help": "retries per request after a 429/5xx/timeout"})
    backoff_s: float = field(default=1.0, metadata={"help": "first retry delay; doubles per retry (with jitter)"})
    timeout_s: float = field(default=60.0, metadata={"help": "per-request timeout"})
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature (0 = greedy)"})
    max_tokens: int = field(default=160, metadata={"help": "max_tokens per completion"})


@dataclass
class AnswerCheckConfig:
    min_overlap: float = field(default=0.8, metadata={
        "help": "a generated answer that lacks the gold span verbatim still passes when this share of the "
        "span's stemmed content words appear in it and every number of the span appears as well"})
    max_answer_words: int = field(default=120, metadata={"help": "longer generated answers fail the check"})


@dataclass
class DocumentsConfig:
    max_file_mb: float = field(default=50.0, metadata={
        "help": "files in a --documents folder larger than this are skipped (counted, reason too_large)"})
    min_page_chars: int = field(default=20, metadata={
        "help": "a PDF page with fewer extracted characters counts as having no text layer (a scan)"})


@dataclass
class QuestionsConfig:
    per_chunk: int = field(default=0, metadata={
        "help": "answerable questions an LLM writes per chunk of the --documents inputs (flag "
        "--generate-questions N); 0 = no generation"})
    unanswerable_per_chunk: int = field(default=1, metadata={
        "help": "questions near the chunk's topic that the chunk does not answer (refusal rows)"})
    generator: Literal["openai", "transformers"] = field(default="openai", metadata={
        "help": "who writes the questions: openai (the endpoint in openai.*) or transformers (the local "
        "model in transformers.*)"})
    max_chunks: int = field(default=0, metadata={"help": "ask about the first N chunks only (0 = all)"})
    batch_size: int = field(default=64, metadata={
        "help": "chunks per generation batch (progress bar step; each batch's replies are cached)"})
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature (0 = greedy)"})
    max_tokens: int = field(default=512, metadata={"help": "max tokens of one JSON reply"})
    min_question_words: int = field(default=3, metadata={"help": "shorter questions are rejected"})
    max_question_words: int = field(default=40, metadata={"help": "longer questions are rejected"})
    max_answer_words: int = field(default=30, metadata={"help": "longer answer spans are rejected"})
    copy_words: int = field(default=8, metadata={
        "help": "a question that repeats this many consecutive words of its chunk is rejected (copies_chunk)"})


@dataclass
class BuildConfig:
    seed: int = field(default=42, metadata={"help": "one seed for splits, chunk counts, negatives, positions"})
    k: int = field(default=4, metadata={"help": "most chunks per example; each example gets 1..k (uniform)"})
    min_k: int = field(default=1, metadata={"help": "fewest chunks per example"})
    unanswerable_share: float = field(default=1 / 3, metadata={
        "help": "share of examples whose gold chunk is removed and whose target is the refusal (per split; "
        "questions that are unanswerable by nature count towards it)"})
    counterfactuals: list[str] = field(default_factory=list, metadata={
        "help": "extra rows per answerable question in `counterfactual_splits`, from the same question with the "
        "context changed so that only the context decides the target: `moved` (the gold chunk at another "
        "position: another [n]) and/or `removed` (the gold chunk taken out: the refusal); none by default"})
    counterfactual_splits: list[str] = field(default_factory=lambda: ["train"], metadata={
        "help": "splits that get the counterfactual rows (evaluation splits keep one row per question)"})
    train_fraction: float = field(default=0.8, metadata={"help": "share of questions in train (split by source document)"})
    validation_fraction: float = field(default=0.1, metadata={"help": "share of questions in validation"})
    test_fraction: float = field(default=0.1, metadata={"help": "share of questions in test"})
    max_chunk_tokens: int = field(default=DEFAULT_MAX_TOKENS, metadata={
        "help": "chunk budget in tokens; counted by `tokenizer`, else estimated as 2.45 tokens per word + 1 "
        "per punctuation mark (calibrated with SmolLM2's tokenizer on XQuAD-de)"})
    tokenizer: Optional[str] = field(default=None, metadata={
        "help": "Hub id or folder of a tokenizer to count chunk tokens exactly (slower); none = the estimate"})
    negatives_pool: int = field(default=12, metadata={
        "help": "BM25 hits fetched per question to pick hard negatives from (after dropping the gold chunk "
        "and chunks that hold the gold span)"})
    bm25_threads: int = field(default=1, metadata={"help": "threads for each batch's BM25 search (0 = one per "
        "core); the results do not depend on it"})
    batch_size: int = field(default=2048, metadata={"help": "questions per batch (retrieval, writer, Parquet row group)"})
    cite_title: bool = field(default=True, metadata={
        "help": "append the cited chunk's source title to answers: '... [2]. (Quelle: <title>)'"})
    writer: Literal["extractive", "transformers", "openai"] = field(default="extractive", metadata={
        "help": "answer writer: extractive (offline, deterministic), transformers (local LM), openai (HTTP)"})
    transformers: TransformersWriterConfig = field(default_factory=TransformersWriterConfig)
    openai: OpenAIWriterConfig = field(default_factory=OpenAIWriterConfig)
    check: AnswerCheckConfig = field(default_factory=AnswerCheckConfig)
    documents: DocumentsConfig = field(default_factory=DocumentsConfig)
    questions: QuestionsConfig = field(default_factory=QuestionsConfig)
    cache_dir: Optional[str] = field(default=None, metadata={
        "help": "writer cache folder (one JSON file per request); default: <RAG_DE_CACHE>/writer-cache"})
    license: Optional[str] = field(default=None, metadata={
        "help": "license of your own --corpus inputs (Hub id, e.g. cc-by-4.0); SQuAD sources and the sample "
        "data bring their own; the dataset card inherits the most restrictive"})
    hub_split: str = field(default="train", metadata={"help": "split read from a Hub SQuAD dataset without ':split'"})
    strict: bool = field(default=False, metadata={
        "help": "raise on the first bad record instead of skipping it (skips are always counted in stats.json)"})

    def validate(self) -> "BuildConfig":
        from rag_de.config import ConfigError

        if not 1 <= self.min_k <= self.k:
            raise ConfigError(f"need 1 <= min_k <= k, got min_k={self.min_k}, k={self.k}")
        if not 0.0 <= self.unanswerable_share < 1.0:
            raise ConfigError(f"unanswerable_share must be in [0, 1), got {self.unanswerable_share}")
        fractions = (self.train_fraction, self.validation_fraction, self.test_fraction)
        if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ConfigError(f"train/validation/test fractions must be >= 0 and sum to 1, got {fractions}")
        from dataset_builder.examples import COUNTERFACTUALS

        unknown = [c for c in self.counterfactuals if c not in COUNTERFACTUALS]
        if unknown:
            raise ConfigError(f"counterfactuals: unknown variant(s) {unknown}; choose from {list(COUNTERFACTUALS)}")
        if self.bm25_threads < 0:
            raise ConfigError(f"bm25_threads must be 0 (one per core) or more, got {self.bm25_threads}")
        if self.max_chunk_tokens < 16:
            raise ConfigError(f"max_chunk_tokens must be at least 16, got {self.max_chunk_tokens}")
        if self.writer == "openai" and not self.openai.model:
            raise ConfigError("writer=openai needs openai.model (flag --openai.model NAME)")
        if self.questions.per_chunk < 0 or self.questions.unanswerable_per_chunk < 0:
            raise ConfigError("questions.per_chunk and questions.unanswerable_per_chunk must be >= 0")
        if self.questions.per_chunk and self.questions.generator == "openai" and not self.openai.model:
            raise ConfigError("question generation with generator=openai needs openai.model "
                              "(flag --openai.model NAME, and --openai.base_url URL)")
        return self
