"""`TrainConfig`: every knob of a training run, with the reference recipe as documented defaults.

The origin project's recipe (QLoRA on one 24 GB GPU): LoRA r=12, alpha=10, dropout 0.1, no bias, on all
linear layers; bitsandbytes NF4 with double quantization and bf16 compute; lr 2e-4 with paged AdamW
32-bit; eval and save every N steps and keep the best checkpoint by eval loss. Presets in
`training_space/configs/*.yaml` change only what differs from it; `rag-de train` layers
defaults <- preset/YAML <- CLI flags and `validate()` rejects contradictions before any model loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from rag_de.base_model import EMBEDDED_MODEL_ID
from answering.decision import FUSION_MODEL_WEIGHT
from evaluation.thresholds import MAX_NEEDLESS_REFUSAL
from rag_de.config import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CPU_PRESET = CONFIG_DIR / "cpu-smollm2.yaml"
GPU_PRESET = CONFIG_DIR / "gpu-mistral7b-24gb.yaml"
# Every shipped preset by name (the file stem): the training Space's dropdown and `--preset` choices.
PRESETS = {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


@dataclass
class ModelConfig:
    name: str = field(default=EMBEDDED_MODEL_ID, metadata={
        "help": "base model: Hub id (written into cards and adapter_config.json) or local folder"})
    revision: Optional[str] = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)"})
    dtype: str = field(default="bfloat16", metadata={
        "help": "dtype of the non-quantized weights (float32, bfloat16, float16); CPUs: float32"})
    attn_implementation: str = field(default="sdpa", metadata={
        "help": "attention kernel: sdpa, eager, flex_attention, flash_attention_2 (packing needs one that "
                "honours per-example position ids: sdpa/flex/flash)"})


@dataclass
class DataConfig:
    dataset: str = field(default="", metadata={
        "help": "Hub dataset id (org/spaces-rag-de) or a local folder of train/validation parquet files; "
                "empty: the sample dataset built from the shipped sample data"})
    revision: Optional[str] = field(default=None, metadata={"help": "dataset revision on the Hub"})
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: Optional[str] = field(default="validation", metadata={
        "help": "split for the eval loss (null = no eval)"})
    max_train_samples: int = field(default=0, metadata={"help": "use the first N train rows (0 = all)"})
    max_eval_samples: int = field(default=0, metadata={"help": "use the first N eval rows (0 = all)"})
    max_length: int = field(default=2048, metadata={
        "help": "tokens per example (truncated from the end), or per packed row when packing"})
    packing: bool = field(default=False, metadata={
        "help": "padding-free BFD packing: examples share rows, position ids restart per example and "
                "attention never crosses examples"})
    shuffle_seed: int = field(default=42, metadata={"help": "seed for the train-set shuffle"})
    keep_variants_together: bool = field(default=True, metadata={
        "help": "a question's counterfactual rows (ids <id>#cf-<variant>, `rag-de build --counterfactuals`) stay "
        "adjacent: groups are shuffled, rows are then sampled in order, so one batch holds the same question "
        "with different contexts and targets and only reading the context lowers the loss"})
    collator: Optional[str] = field(default=None, metadata={
        "help": "custom data collator as 'module:Class' (default: TRL's completion-only collator); "
                "cannot be combined with packing"})


@dataclass
class LoraConfig:
    r: int = field(default=12, metadata={"help": "LoRA rank"})
    alpha: int = field(default=10, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA input"})
    bias: Literal["none", "all", "lora_only"] = field(default="none", metadata={"help": "train biases"})
    task_type: str = field(default="CAUSAL_LM", metadata={"help": "PEFT task type"})
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"], metadata={
        "help": "modules with adapters; 'all-linear' = every linear layer except the output head"})


@dataclass
class QuantizationConfig:
    kind: Literal["nf4", "fp4", "none"] = field(default="nf4", metadata={
        "help": "bitsandbytes 4-bit type of the frozen base weights; 'none' = plain LoRA (no QLoRA)"})
    double_quant: bool = field(default=True, metadata={"help": "quantize the quantization constants too"})
    compute_dtype: str = field(default="bfloat16", metadata={"help": "dtype the 4-bit matmuls run in"})
    upcast_non_quantized: bool = field(default=True, metadata={
        "help": "peft.prepare_model_for_kbit_training: cast norms/embeddings/head to fp32 (reference recipe); "
                "false keeps them in model.dtype (faster, less memory on GPUs)"})
    cpu_fallback: bool = field(default=True, metadata={
        "help": "when bitsandbytes cannot run 4-bit on this machine, say so and train non-quantized LoRA "
                "(quantization: none) instead of failing"})


@dataclass
class TrainingConfig:
    output_dir: str = field(default="runs/train", metadata={"help": "the run folder"})
    seed: int = field(default=42, metadata={"help": "seed for LoRA init, dropout and data order"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    warmup_steps: float = field(default=0.03, metadata={
        "help": "warmup: a fraction of the total steps if < 1, else a number of steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=0.3, metadata={"help": "gradient clipping (QLoRA paper: 0.3)"})
    optim: str = field(default="paged_adamw_32bit", metadata={
        "help": "optimizer (transformers name); paged_* needs CUDA and falls back to adamw_torch on CPU"})
    num_train_epochs: float = field(default=1.0, metadata={"help": "epochs (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps (-1 = from epochs)"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "rows per device per micro-step"})
    per_device_eval_batch_size: int = field(default=4, metadata={"help": "rows per device for eval"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-steps per optimizer step"})
    gradient_checkpointing: bool = field(default=True, metadata={
        "help": "recompute activations in backward (less memory, ~25% more time); passed to transformers as "
                "activation_checkpointing"})
    bf16: Optional[bool] = field(default=None, metadata={
        "help": "bf16 autocast; null = on where the device supports it fast (CUDA with bf16)"})
    fp16: bool = field(default=False, metadata={"help": "fp16 autocast (GPUs without bf16)"})
    use_liger_kernel: bool = field(default=False, metadata={
        "help": "Liger Triton kernels (RMSNorm, RoPE, SwiGLU); CUDA and the liger-kernel package only"})
    logging_steps: int = field(default=5, metadata={"help": "log loss every N steps"})
    eval_steps: int = field(default=50, metadata={"help": "eval loss every N steps"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps (a multiple of eval_steps)"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept (the best is always kept)"})
    load_best_model_at_end: bool = field(default=True, metadata={
        "help": "restore the checkpoint with the lowest eval loss at the end"})
    metric_for_best_model: str = field(default="eval_loss", metadata={"help": "metric that picks the best"})
    dataloader_num_workers: int = field(default=0, metadata={"help": "data loader worker processes"})
    decision_token_weight: float = field(default=1.0, metadata={
        "help": "loss weight of the decision tokens (the answer's first word, `Laut` or `Leider`, and the cited "
        "chunk number); 1 = plain SFT (the reference recipe). Above 1 teaches answer-or-refuse and which chunk "
        "with few rows (training_space/objective.py)"})
    tune_decision: bool = field(default=True, metadata={
        "help": "after training, tune the refusal threshold on the eval split from the model's own "
        "probabilities and ship it with the adapter (rag_de_decision.json; evaluation and the demo use it)"})
    decision_modes: list[str] = field(default_factory=lambda: ["lead", "evidence", "fused"], metadata={
        "help": "readings tuned on the eval split (answering/decision.py: lead = first word + chunk digit, "
        "evidence = the question's likelihood with each chunk, fused = evidence averaged with the BM25 score); "
        "the one with the best mean of F1-GR and citation accuracy there is shipped"})
    fusion_model_weight: float = field(default=FUSION_MODEL_WEIGHT, metadata={
        "help": "`fused` reading: weight of the model's standardized evidence score (1 - it: BM25's); 0.5 = "
        "equal, not tuned (38 validation rows cannot pick a second parameter reliably)"})
    max_needless_refusal: float = field(default=MAX_NEEDLESS_REFUSAL, metadata={
        "help": "the tuned threshold refuses at most this share of the eval split's answerable questions "
        "(evaluation/thresholds.py; 1.0 = no limit)"})
    answer_modes: list[str] = field(default_factory=lambda: ["generated", "extracted", "free"], metadata={
        "help": "answer modes measured on the eval split once the decision is tuned (answering/answer.py: "
        "generated = the model writes after the forced lead `Laut Abschnitt [k] (Titel):`, extracted = the cited "
        "chunk's best-matching sentence, free = the model's own generation); the best by answer quality and "
        "F1-GR ships in rag_de_decision.json (evaluation/answer_modes.py) and the demo answers that way"})
    answer_mode_rows: int = field(default=0, metadata={
        "help": "eval-split rows the answer modes are measured on (the first N; 0 = all, as the threshold)"})
    answer_max_new_tokens: int = field(default=96, metadata={
        "help": "tokens the model may write when the answer modes are measured (a cited full-sentence answer "
        "is ~40-60)"})
    device: Optional[str] = field(default=None, metadata={
        "help": "cpu or cuda; null = cuda when present (under accelerate: the process's device)"})


@dataclass
class HubConfig:
    model_id: Optional[str] = field(default=None, metadata={
        "help": "push the adapter, tokenizer, config, trainer state, summary and card here (org/NAME)"})
    private: bool = field(default=False, metadata={"help": "create the model repo as private"})
    push_each_save: bool = field(default=False, metadata={
        "help": "also push every checkpoint (hub_strategy=checkpoint), so --resume works from the Hub"})


@dataclass
class TrackingConfig:
    report_to: list[str] = field(default_factory=lambda: ["none"], metadata={
        "help": "none, tensorboard, trackio, wandb (comma-separated for several)"})
    run_name: Optional[str] = field(default=None, metadata={"help": "run name in the tracker"})
    project: str = field(default="spaces-rag-de", metadata={"help": "trackio/wandb project"})


@dataclass
class TrainConfig:
    """One training run: what to train, on what, how, and where the result goes."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def cuda_supports_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matmuls (AVX512-BF16 or AMX); elsewhere bf16 is emulated, >6x slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def target_device(config: TrainConfig) -> str:
    if config.training.device:
        return config.training.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def distributed_backend() -> str:
    """What `accelerate launch` set up for this process: fsdp, deepspeed, multi (DDP) or single."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "deepspeed"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "multi"
    return "single"


def validate(config: TrainConfig, device: str | None = None) -> TrainConfig:
    """Reject contradictory settings with a ConfigError that says which keys and how to fix them.

    Runs before the tokenizer or model is loaded, so a wrong config costs seconds, not a model load; the
    checks that need no device come first, so they fail before torch is even imported.
    """
    t, d, q = config.training, config.data, config.quantization
    if d.packing and d.collator:
        raise ConfigError(
            f"data.packing=true with a custom data.collator={d.collator!r}: padding-free packing needs TRL's own "
            "collator (it writes the per-example position ids). Remove data.collator or set data.packing=false.")
    if d.packing and config.model.attn_implementation == "eager":
        raise ConfigError("data.packing=true with model.attn_implementation=eager: use sdpa, flex_attention or "
                          "flash_attention_2, which honour the per-example position ids of packed rows.")
    if t.bf16 and t.fp16:
        raise ConfigError("training.bf16 and training.fp16 are both true; choose one.")
    from answering.decision import DECISION_MODES as modes

    if t.tune_decision and (not t.decision_modes or any(m not in modes for m in t.decision_modes)):
        raise ConfigError(f"training.decision_modes={t.decision_modes}: choose one or more of {list(modes)} "
                          "(or set training.tune_decision=false)")
    from answering.decision import ANSWER_MODES

    if t.tune_decision and (not t.answer_modes or any(m not in ANSWER_MODES for m in t.answer_modes)):
        raise ConfigError(f"training.answer_modes={t.answer_modes}: choose one or more of {list(ANSWER_MODES)}")
    if t.answer_mode_rows < 0 or t.answer_max_new_tokens < 1:
        raise ConfigError(f"training.answer_mode_rows={t.answer_mode_rows} must be >= 0 (0 = all) and "
                          f"training.answer_max_new_tokens={t.answer_max_new_tokens} >= 1")
    if not 0.0 <= t.max_needless_refusal <= 1.0:
        raise ConfigError(f"training.max_needless_refusal={t.max_needless_refusal}: use a share from 0 to 1")
    if not 0.0 <= t.fusion_model_weight <= 1.0:
        raise ConfigError(f"training.fusion_model_weight={t.fusion_model_weight}: use a weight from 0 to 1")
    if t.load_best_model_at_end and config.data.eval_split and t.save_steps % t.eval_steps:
        raise ConfigError(
            f"training.save_steps={t.save_steps} must be a multiple of training.eval_steps={t.eval_steps} when "
            "training.load_best_model_at_end=true (the best checkpoint must have an eval loss).")
    sharded = distributed_backend() == "fsdp" or (
        distributed_backend() == "deepspeed" and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")
    if q.kind != "none" and sharded:
        raise ConfigError(
            f"quantization.kind={q.kind} under {distributed_backend()} parameter sharding: sharding 4-bit weights needs "
            "bnb_4bit_quant_storage=bf16, which the shared loader does not set. Use quantization.kind=none "
            "with the fsdp/deepspeed_zero3 accelerate configs, or DDP/ZeRO-2 for QLoRA (training_space/README.md).")
    if d.max_length < 16:
        raise ConfigError(f"data.max_length={d.max_length} is too short for a prompt plus an answer.")
    for name in ("r", "alpha"):
        if getattr(config.lora, name) <= 0:
            raise ConfigError(f"lora.{name} must be positive, got {getattr(config.lora, name)}")
    if not 0 <= config.lora.dropout < 1:
        raise ConfigError(f"lora.dropout must be in [0, 1), got {config.lora.dropout}")
    if t.max_steps <= 0 and t.num_train_epochs <= 0:
        raise ConfigError("set training.max_steps > 0 or training.num_train_epochs > 0")
    bad = set(config.tracking.report_to) - {"none", "tensorboard", "trackio", "wandb"}
    if bad:
        raise ConfigError(f"tracking.report_to: unknown tracker(s) {sorted(bad)}; use none, tensorboard, "
                          "trackio or wandb")

    # Checks that depend on the device (torch is imported to find it when training.device is unset).
    device = device or target_device(config)
    on_cuda = device.startswith("cuda")
    if t.bf16 and not on_cuda and not cpu_supports_bf16():
        raise ConfigError(
            f"training.bf16=true on device {device!r}, which has no native bf16 (no AVX512-BF16/AMX): it would "
            "be emulated and >6x slower. Set training.bf16=false (or null for auto) and model.dtype=float32.")
    if t.bf16 and on_cuda and not cuda_supports_bf16():
        raise ConfigError("training.bf16=true but this GPU has no bf16; set training.fp16=true instead.")
    if t.fp16 and not on_cuda:
        raise ConfigError(f"training.fp16=true needs a CUDA GPU (device is {device!r}); set it to false.")
    if t.use_liger_kernel and not on_cuda:
        raise ConfigError("training.use_liger_kernel=true needs a CUDA GPU (Triton kernels); set it to false.")
    if config.model.attn_implementation == "flex_attention" and not on_cuda:
        raise ConfigError(
            f"model.attn_implementation=flex_attention on device {device!r}: torch's FlexAttention has no "
            "backward pass on CPU, so training would fail at the first step. Set model.attn_implementation=sdpa "
            "(packed rows keep their per-example attention with sdpa too).")
    return config
