"""`rag-de export-autotrain`: the same run as an AutoTrain Advanced `llm-sft` config.

AutoTrain reads a YAML with `task`, `base_model`, `project_name`, `data` (path, splits, chat template,
column mapping), `params` (trainer hyperparameters) and `hub` (credentials as ${ENV} placeholders that
AutoTrain expands, so no token is written). Keys follow the configs shipped in AutoTrain's
`configs/llm_finetuning/*.yml`. Differences AutoTrain cannot express are written as comments.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rag_de.atomic import write_text
from rag_de.base_model import hub_id
from rag_de.config import ConfigError
from training_space.config import TrainConfig

MIXED_PRECISION = {True: "bf16", False: None}


def autotrain_config(config: TrainConfig, project_name: str | None = None) -> dict:
    """TrainConfig -> AutoTrain llm-sft mapping."""
    dataset = config.data.dataset
    if not dataset or Path(dataset).exists() or dataset.count("/") != 1:
        raise ConfigError(f"data.dataset={dataset!r}: AutoTrain reads the dataset from the Hub; publish it with "
                          "`rag-de publish --repo org/spaces-rag-de` and pass --data.dataset org/spaces-rag-de")
    t, lora = config.training, config.lora
    name = project_name or (config.hub.model_id.split("/")[-1] if config.hub.model_id else "spaces-rag-de-sft")
    targets = "all-linear" if lora.target_modules == ["all-linear"] else ",".join(lora.target_modules)
    params = {
        "block_size": config.data.max_length,
        "model_max_length": config.data.max_length,
        "epochs": max(1, round(t.num_train_epochs)) if t.max_steps <= 0 else 1,
        "batch_size": t.per_device_train_batch_size,
        "gradient_accumulation": t.gradient_accumulation_steps,
        "lr": t.learning_rate,
        "scheduler": t.lr_scheduler_type,
        "warmup_ratio": t.warmup_steps if t.warmup_steps < 1 else 0.03,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "optimizer": t.optim,
        "seed": t.seed,
        "peft": True,
        "quantization": "int4" if config.quantization.kind in ("nf4", "fp4") else None,
        "lora_r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": targets,
        "padding": "right",
        "mixed_precision": "bf16" if t.bf16 is not False else None,
        "disable_gradient_checkpointing": not t.gradient_checkpointing,
        "logging_steps": t.logging_steps,
        "save_total_limit": t.save_total_limit,
        "eval_strategy": "steps" if config.data.eval_split else "no",
        "merge_adapter": False,
    }
    return {
        "task": "llm-sft",
        "base_model": hub_id(config.model.name),
        "project_name": name,
        "log": next((r for r in config.tracking.report_to if r in ("tensorboard", "wandb")), "tensorboard"),
        "backend": "local",
        "data": {
            "path": dataset,
            "train_split": config.data.train_split,
            "valid_split": config.data.eval_split,
            # The `messages` column rendered with the base model's own chat template: the prompt contract.
            "chat_template": "tokenizer",
            "column_mapping": {"text_column": "messages"},
        },
        "params": {k: v for k, v in params.items() if v is not None},
        "hub": {"username": "${HF_USERNAME}", "token": "${HF_TOKEN}", "push_to_hub": bool(config.hub.model_id)},
    }


HEADER = """\
# AutoTrain Advanced llm-sft config exported by `rag-de export-autotrain` from {source}.
# Run: pip install autotrain-advanced && HF_USERNAME=... HF_TOKEN=... autotrain --config {out}
# Not expressible in AutoTrain (they differ from `rag-de train`):
# - loss: AutoTrain's SFT trains on every token of `messages`; rag-de masks the prompt (answer + EOS only).
# - quantization: AutoTrain's int4 is bitsandbytes NF4; double quantization and the compute dtype are fixed.
# - {steps}
# - best checkpoint by eval loss and padding-free packing are rag-de options without an AutoTrain key.
"""


def export_autotrain(config: TrainConfig, out: str | Path, project_name: str | None = None,
                     source: str = "TrainConfig") -> Path:
    mapping = autotrain_config(config, project_name)
    steps = (f"max_steps={config.training.max_steps} has no AutoTrain key: epochs={mapping['params']['epochs']} "
             "is used instead" if config.training.max_steps > 0 else "epochs map one to one")
    text = HEADER.format(source=source, out=Path(out).name, steps=steps)
    text += yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True)
    return write_text(out, text)
