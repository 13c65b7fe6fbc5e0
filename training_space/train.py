"""`rag-de train`: (Q)LoRA supervised fine-tuning with TRL's SFTTrainer, top to bottom.

    config -> checks (no model yet) -> tokenizer + data -> base model (4-bit NF4 or not) -> LoRA
    -> SFTTrainer.train (resumable) -> run folder (adapter, state, config, summary, card) -> Hub push

TRL, PEFT, transformers and bitsandbytes do the work; this file only decides their settings from a
`TrainConfig` and writes the run folder that evaluation and the cards read. It runs the same under
`python -m rag_de train` and `accelerate launch -m rag_de train` (DDP, FSDP, DeepSpeed).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from rag_de import config as config_lib
from rag_de.atomic import atomic_dir, write_json, write_text
from rag_de.base_model import hub_id
from rag_de.config import ConfigError
from rag_de.modeling import LoadQuantizationConfig
from training_space import data as data_mod
from training_space.config import CPU_PRESET, TrainConfig, distributed_backend, target_device, validate

ADAPTER_DIR = "adapter"
HUB_CHECKPOINT_DIR = "last-checkpoint"   # where hub_strategy="checkpoint" pushes the latest checkpoint


def load_config(path: str | os.PathLike | None, overrides: dict | None = None) -> TrainConfig:
    """Defaults (reference recipe) <- YAML (default: the CPU preset) <- CLI overrides."""
    return config_lib.load(TrainConfig, path or CPU_PRESET, overrides)


def log(msg: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[train] {msg}", flush=True)


# -----------------------------------------------------------------------------------------------
# Decisions that depend on the machine, made before anything heavy loads

def bnb_4bit_works(device: str) -> bool:
    """Whether bitsandbytes can quantize and dequantize NF4 on `device` here (CPU support is recent)."""
    try:
        import torch
        from bitsandbytes.functional import dequantize_4bit, quantize_4bit

        weight = torch.randn(64, 64, device=device)
        packed, state = quantize_4bit(weight, quant_type="nf4")
        return bool(torch.isfinite(dequantize_4bit(packed, state)).all())
    except Exception as exc:  # any import/kernel failure means "not on this machine"
        log(f"bitsandbytes 4-bit is not available on {device}: {type(exc).__name__}: {exc}")
        return False


def quantization_settings(config: TrainConfig, device: str) -> tuple[LoadQuantizationConfig, str | None]:
    """The 4-bit settings this machine runs, and why they differ from the config (None: as configured).

    `config` is not changed: a fallback is printed and recorded in train_summary.json (`fallbacks`).
    """
    q = config.quantization
    if q.kind != "none" and not bnb_4bit_works(device):
        if not q.cpu_fallback:
            raise ConfigError(f"quantization.kind={q.kind} but bitsandbytes 4-bit does not run on {device}; "
                              "install bitsandbytes>=0.48 or set quantization.kind=none")
        note = (f"quantization.kind={q.kind} -> none: bitsandbytes 4-bit does not run on {device}, so this run "
                "trains non-quantized LoRA (quantization.cpu_fallback=true)")
        log(f"FALLBACK: {note}")
        return LoadQuantizationConfig(kind="none"), note
    return LoadQuantizationConfig(kind=q.kind, double_quant=q.double_quant, compute_dtype=q.compute_dtype), None


def optimizer_for(config: TrainConfig, device: str) -> tuple[str, str | None]:
    """The optimizer this device runs, and why it differs from training.optim (None: as configured)."""
    optim = config.training.optim
    if optim.startswith("paged_") and not device.startswith("cuda"):
        note = f"training.optim={optim} -> adamw_torch: paged optimizers page their state through CUDA ({device})"
        log(f"FALLBACK: {note}")
        return "adamw_torch", note
    return optim, None


def process_device(device: str) -> str:
    """This process's device: its own GPU under DDP/ZeRO-2; CPU (sharded later) under FSDP/ZeRO-3."""
    zero3 = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    if device.startswith("cuda") and (distributed_backend() == "fsdp" or zero3):
        return "cpu"
    if device.startswith("cuda") and distributed_backend() in ("multi", "deepspeed"):
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def check_trackers(report_to: list[str]) -> list[str]:
    import importlib.util

    wanted = [r for r in report_to if r != "none"]
    for tracker in wanted:
        module = {"tensorboard": "tensorboard"}.get(tracker, tracker)
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"tracking.report_to includes {tracker!r} but the package is not installed: "
                              f"pip install {tracker} (or set tracking.report_to=none)")
    return wanted or ["none"]


def sft_config(config: TrainConfig, device: str, eos_token: str, has_eval: bool, optim: str | None = None,
               in_order: bool = False):
    """TrainConfig -> TRL SFTConfig: the one place where our keys meet transformers/TRL's.

    `optim` is the optimizer `optimizer_for` chose for this device (default: training.optim).
    """
    from trl import SFTConfig

    t, d = config.training, config.data
    on_cuda = device.startswith("cuda")
    bf16 = t.bf16 if t.bf16 is not None else (on_cuda and _cuda_bf16())
    optim = optim or t.optim
    return SFTConfig(
        output_dir=t.output_dir,
        seed=t.seed,
        data_seed=d.shuffle_seed,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps if t.warmup_steps < 1 else int(t.warmup_steps),
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=optim,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        # transformers' current names (gradient_checkpointing* are deprecated aliases); the YAML key stays
        # training.gradient_checkpointing, the name users know.
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        bf16=bool(bf16),
        fp16=t.fp16,
        use_liger_kernel=t.use_liger_kernel,
        use_cpu=not on_cuda,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",   # state.num_input_tokens_seen -> train_tokens
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=t.load_best_model_at_end and has_eval,
        metric_for_best_model=t.metric_for_best_model,
        greater_is_better=False if t.metric_for_best_model.endswith("loss") else None,
        dataloader_num_workers=t.dataloader_num_workers,
        # counterfactual groups are adjacent in the data (data.keep_variants_together): keep that order
        train_sampling_strategy="sequential" if in_order else "random",
        report_to=check_trackers(config.tracking.report_to),
        run_name=config.tracking.run_name,
        project=config.tracking.project,
        # Data: conversational prompt-completion rows, loss on the completion (answer + end-of-turn) only.
        max_length=d.max_length,
        packing=d.packing,
        packing_strategy="bfd",
        padding_free=d.packing,
        completion_only_loss=True,
        eos_token=eos_token,
        # Hub: each checkpoint is pushed (as last-checkpoint/) only when asked; the final push is ours.
        push_to_hub=bool(config.hub.model_id and config.hub.push_each_save),
        hub_model_id=config.hub.model_id,
        hub_strategy="checkpoint",
        hub_private_repo=config.hub.private,
        disable_tqdm=False,
    )


def _cuda_bf16() -> bool:
    from training_space.config import cuda_supports_bf16

    return cuda_supports_bf16()


def custom_collator(spec: str | None, tokenizer):
    if not spec:
        return None
    import importlib

    module_name, _, cls_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"data.collator={spec!r}: cannot import it ({exc}); use 'package.module:ClassName'")
    return cls(tokenizer=tokenizer) if "tokenizer" in getattr(cls, "__dataclass_fields__", {}) else cls()


# -----------------------------------------------------------------------------------------------
# Resume: the last checkpoint in the run folder, else the Hub repo's last-checkpoint/

def last_checkpoint(config: TrainConfig) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(config.training.output_dir)
    if out.is_dir():
        found = get_last_checkpoint(str(out))
        if found:
            return found
        if (out / HUB_CHECKPOINT_DIR / "trainer_state.json").exists():
            return str(out / HUB_CHECKPOINT_DIR)
    if config.hub.model_id:
        from huggingface_hub import HfApi, snapshot_download

        api = HfApi()
        if api.repo_exists(config.hub.model_id):
            files = api.list_repo_files(config.hub.model_id)
            if any(f.startswith(f"{HUB_CHECKPOINT_DIR}/") for f in files):
                log(f"resuming from {config.hub.model_id}/{HUB_CHECKPOINT_DIR} on the Hub")
                snapshot_download(config.hub.model_id, allow_patterns=[f"{HUB_CHECKPOINT_DIR}/*"], local_dir=out)
                return str(out / HUB_CHECKPOINT_DIR)
    return None


# -----------------------------------------------------------------------------------------------
# The run

@dataclass
class Run:
    """A trainer ready to go, and what the run folder needs to know about how it was set up."""

    trainer: object
    config: TrainConfig
    device: str
    quantization: str
    base_id: str
    dataset: str
    dataset_revision: str | None
    resume_from: str | None
    fallbacks: dict[str, str]   # what this machine runs differently from the config, and why


def build_trainer(config: TrainConfig, resume: bool = False) -> Run:
    """Checks, tokenizer, data, base model, LoRA and the SFTTrainer; nothing trained yet."""
    validate(config)   # the config-only checks run first: a wrong config fails before torch is imported
    device = target_device(config)
    if config.model.dtype in ("bfloat16", "bf16") and not device.startswith("cuda"):
        from training_space.config import cpu_supports_bf16

        if not cpu_supports_bf16():
            raise ConfigError(f"model.dtype={config.model.dtype} on {device} without native bf16: >6x slower. "
                              "Set model.dtype=float32 and quantization.compute_dtype=float32 (as the CPU "
                              f"preset {CPU_PRESET.name} does).")

    # 1. tokenizer and data: every input check happens here, before the model is loaded
    from rag_de.modeling import load_tokenizer

    tokenizer = load_tokenizer(config.model.name, revision=config.model.revision, padding_side="right")
    prepared = data_mod.prepare(config.data, tokenizer, config.model.name)
    train_rows, eval_rows, dataset_revision, dataset_name = (prepared.train, prepared.evaluation,
                                                            prepared.revision, prepared.dataset)
    eos_token = data_mod.end_of_turn_token(tokenizer)
    collator = custom_collator(config.data.collator, tokenizer)
    quant, quant_note = quantization_settings(config, device)
    optim, optim_note = optimizer_for(config, device)
    fallbacks = {k: v for k, v in (("quantization", quant_note), ("optim", optim_note)) if v}
    args = sft_config(config, device, eos_token, has_eval=eval_rows is not None, optim=optim,
                      in_order=prepared.in_order)
    resume_from = last_checkpoint(config) if resume else None
    if resume and resume_from is None:
        log(f"--resume: no checkpoint in {config.training.output_dir} or on the Hub; starting from step 0")
    log(f"{len(train_rows)} train / {len(eval_rows) if eval_rows is not None else 0} eval rows from "
        f"{dataset_name}; base {config.model.name}; quantization {quant.kind}; device {device}")

    # 2. the base model (frozen, 4-bit NF4 unless quantization: none) and the LoRA adapter
    from peft import LoraConfig, prepare_model_for_kbit_training
    from rag_de.modeling import load_causal_lm
    from trl import SFTTrainer

    model = load_causal_lm(config.model.name, quant, dtype=config.model.dtype, device=process_device(device),
                           revision=config.model.revision, attn_implementation=config.model.attn_implementation,
                           tokenizer=tokenizer)
    if quant.kind != "none" and config.quantization.upcast_non_quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.training.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    targets = config.lora.target_modules
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      bias=config.lora.bias, task_type=config.lora.task_type,
                      target_modules="all-linear" if targets == ["all-linear"] else targets)

    # 3. the trainer: TRL tokenizes prompt/completion with the chat template and masks the prompt
    trainer_class, extra = SFTTrainer, {}
    if config.training.decision_token_weight != 1.0:   # the decision tokens weighted up (objective.py says why)
        from training_space.objective import DecisionPositions, weighted_trainer_class

        trainer_class = weighted_trainer_class()
        extra = {"decision_weight": config.training.decision_token_weight,
                 "decision_positions": DecisionPositions.from_tokenizer(tokenizer)}
    trainer = trainer_class(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                            processing_class=tokenizer, peft_config=lora, data_collator=collator, **extra)
    base_id = hub_id(config.model.name)
    for peft_conf in trainer.model.peft_config.values():
        peft_conf.base_model_name_or_path = base_id   # the Hub id in every saved adapter_config.json
    if quant.kind != "none" and quant.compute_dtype in ("float32", "fp32"):
        # TRL stores LoRA weights of 4-bit models in bf16 (QLoRA paper); with fp32 compute (CPUs without bf16)
        # they stay fp32, or every LoRA matmul would run emulated bf16.
        for param in trainer.model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    return Run(trainer, config, device, quant.kind, base_id, dataset_name, dataset_revision, resume_from, fallbacks)


def token_counter(trainer):
    """A callback holding the input tokens (non-padding) this `train()` call trained on.

    Read from the Trainer's public `state.num_input_tokens_seen` (include_num_input_tokens_seen), which a
    resumed run restores from its checkpoint: the count starts at the value `train()` begins with.
    """
    from transformers import TrainerCallback

    class TokenCounter(TrainerCallback):
        start = tokens = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.start, self.tokens = state.num_input_tokens_seen, 0

        def on_train_end(self, args, state, control, **kwargs):
            self.tokens = state.num_input_tokens_seen - self.start

    counter = TokenCounter()
    trainer.add_callback(counter)
    return counter


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Train, write the run folder, push; returns the run folder."""
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run = build_trainer(config, resume)   # every config and input check, before torch is imported
    import torch

    trainer, device, run_dir = run.trainer, run.device, Path(config.training.output_dir)
    tokens = token_counter(trainer)
    if trainer.is_world_process_zero():
        trainer.model.print_trainable_parameters()

    # 4. train (resumes step, optimizer, scheduler and RNG from the checkpoint)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=run.resume_from)
    runtime = time.time() - t0

    # 5. the refusal threshold, tuned on the eval split from the model's own probabilities (main process)
    decision = None
    if trainer.is_world_process_zero() and config.training.tune_decision and config.data.eval_split:
        decision = tune_decision(trainer, config, run)

    # 6. the run folder and the push (main process only)
    if trainer.is_world_process_zero():
        summary = {
            "base_model": run.base_id,
            "dataset": run.dataset if not Path(run.dataset).exists() else Path(run.dataset).name,
            "dataset_revision": run.dataset_revision,
            "hub_model_id": config.hub.model_id,
            "hardware": hardware(device),
            "quantization": run.quantization,
            "fallbacks": run.fallbacks,
            "train_runtime_s": round(runtime, 1),
            "train_tokens": int(tokens.tokens),
            "tokens_per_s": round(tokens.tokens / max(runtime, 1e-9), 1),
            "peak_memory_gb": round(peak_memory_gb(device), 2),
            "global_step": trainer.state.global_step,
            "epochs": round(trainer.state.epoch or 0.0, 3),
            "train_loss": round(result.training_loss, 4),
            "eval_loss": best_eval_loss(trainer.state.log_history),
            "decision": asdict(decision) if decision else None,
            "started_at": started_at,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_run_folder(trainer, config, run_dir, summary, decision)
        if config.hub.model_id:
            push_run(run_dir, config.hub.model_id, private=config.hub.private)
    trainer.accelerator.wait_for_everyone()
    print(f"[train] rank {trainer.args.process_index}/{trainer.args.world_size} done at step "
          f"{trainer.state.global_step}", flush=True)
    return run_dir


def best_eval_loss(history: list[dict]) -> float | None:
    losses = [row["eval_loss"] for row in history if "eval_loss" in row]
    return round(min(losses), 4) if losses else None


def hardware(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        n = torch.cuda.device_count()
        return f"{n}x {torch.cuda.get_device_name(0)}"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    procs = f", {world} processes" if world > 1 else ""
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads{procs})"


def peak_memory_gb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # Linux: KiB -> GiB (process RSS)


def tune_decision(trainer, config: TrainConfig, run: "Run"):
    """The refusal threshold that maximizes F1-GR on the whole eval split (evaluation.decisions). Training is
    over: on CPU the 4-bit weights are dequantized once first, as `rag-de evaluate` reads them (same values)."""
    from answering.decision import DECISION_FILE as DECISION_FILE_NAME
    from evaluation.decisions import tune_on_rows
    from rag_de.modeling import dequantize_4bit_on_cpu

    splits, _ = data_mod.load_splits(run.dataset, config.data.revision)
    rows = list(splits[config.data.eval_split])
    name = Path(run.dataset).name if Path(run.dataset).exists() else run.dataset
    revision = f"@{run.dataset_revision[:10]}" if run.dataset_revision else ""
    where = f"{name}{revision} [{config.data.eval_split}]"
    trainer.model.eval()
    dequantize_4bit_on_cpu(trainer.model)
    decision, tuned, decisions = tune_on_rows(trainer.model, trainer.processing_class, rows, where,
                                              config.training.decision_modes, config.training.fusion_model_weight,
                                              config.training.max_needless_refusal)
    for t in tuned.values():
        log(f"{t.mode} decisions on {where}: refusal threshold {t.refusal_threshold:.3f}, F1-GR "
            f"{_fmt(t.objective_value)}, refusal AUC {_fmt(t.refusal_auc)}, constrained citation accuracy on 2+ "
            f"chunks {_fmt(t.citation_accuracy_multi)}")
    choose_answer_mode(trainer, config, decision, rows, decisions, where)
    log(f"shipping the {decision.mode} decisions, answers {decision.answer_mode}, with the adapter "
        f"({DECISION_FILE_NAME})")
    return decision


def choose_answer_mode(trainer, config: TrainConfig, decision, rows, decisions, where: str) -> None:
    """Each answer mode's answers on the eval split (or its first `answer_mode_rows`), scored by answer quality
    and F1-GR (evaluation.answer_modes); the best is recorded in `decision` (shipped with the adapter)."""
    from dataset_builder.contract import contexts_from_column, render_prompt_text
    from evaluation.answer_modes import measure_modes

    t = config.training
    n = t.answer_mode_rows or len(rows)
    rows, decisions = rows[:n], decisions[:n]
    tokenizer = trainer.processing_class
    prompts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in rows]
    log(f"answer modes {', '.join(t.answer_modes)} on {len(rows)} rows of {where} ...")
    mode, figures = measure_modes(t.answer_modes, lambda: trainer.model, tokenizer, rows, prompts, decisions,
                                  decision.refusal_threshold, t.answer_max_new_tokens,
                                  config.training.per_device_eval_batch_size)
    for name, f in figures.items():
        log(f"answer mode {name}: score {_fmt(f['score'])} (gold-span recall {_fmt(f['gold_span_recall'])}, token "
            f"F1 {_fmt(f['token_f1'])}, faithfulness {_fmt(f['faithfulness'])}, F1-GR {_fmt(f['f1_gr'])})")
    decision.answer_mode, decision.answer_modes = mode, figures


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_run_folder(trainer, config: TrainConfig, run_dir: Path, summary: dict, decision=None) -> None:
    """adapter/ (+ tokenizer, tuned threshold), trainer_state.json, train_config.yaml, train_summary.json, README.md."""
    import yaml

    with atomic_dir(run_dir / ADAPTER_DIR) as tmp:
        trainer.model.save_pretrained(tmp)
        trainer.processing_class.save_pretrained(tmp)
        if decision is not None:
            decision.save(tmp)
    write_text(run_dir / "trainer_state.json", json.dumps(
        {"global_step": trainer.state.global_step, "best_model_checkpoint": _relative(trainer.state.best_model_checkpoint),
         "best_metric": trainer.state.best_metric, "log_history": trainer.state.log_history}, indent=2) + "\n")
    resolved = config_lib.to_dict(config)
    resolved["model"]["name"] = summary["base_model"]
    resolved["data"]["dataset"] = summary["dataset"]
    resolved["training"]["output_dir"] = "."
    write_text(run_dir / "train_config.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    write_json(run_dir / "train_summary.json", summary)
    from model_cards.model_card import render_model_card

    try:
        write_text(run_dir / "README.md", render_model_card(run_dir, hub_model_id=config.hub.model_id))
    except ValueError as exc:   # e.g. a base model given as a local folder: a card must name a Hub id
        log(f"WARNING: no model card written: {exc}")
    log(f"run folder: {run_dir} (adapter/, trainer_state.json, train_config.yaml, train_summary.json, README.md)")


def _relative(path: str | None) -> str | None:
    return Path(path).name if path else None


RUN_FILES = ("train_config.yaml", "trainer_state.json", "train_summary.json", "README.md")


def push_run(run_dir: Path, repo_id: str, private: bool = False) -> str:
    """Adapter + tokenizer at the repo root (so PeftModel.from_pretrained(base, repo) works) and the run
    files, in ONE commit: a reader never sees an adapter without its card and config."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    ops = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p))
           for p in sorted((run_dir / ADAPTER_DIR).iterdir()) if p.is_file()]
    ops += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run_dir / name))
            for name in RUN_FILES if (run_dir / name).exists()]
    info = api.create_commit(repo_id, operations=ops, commit_message=f"Adapter, card and run files from {run_dir.name}")
    log(f"pushed {len(ops)} files to {repo_id} in one commit ({info.oid[:10]})")
    return info.oid


if __name__ == "__main__":  # python -m training_space.train [--config ...]: same as `rag-de train`
    from rag_de.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
