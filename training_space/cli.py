"""`rag-de train`, `rag-de export-autotrain`, `rag-de deploy training-space`.

Only argparse and light project modules load here; torch/transformers/trl load inside the commands.
"""

from __future__ import annotations

import argparse

from rag_de import config as config_lib
from rag_de.base_model import EMBEDDED_MODEL_ID
from training_space.config import CPU_PRESET, GPU_PRESET, PRESETS

REPO_ROOT = CPU_PRESET.parents[2]
CPU_PRESET_PATH = CPU_PRESET.relative_to(REPO_ROOT)
GPU_PRESET_PATH = GPU_PRESET.relative_to(REPO_ROOT)
TRAIN_DESCRIPTION = f"""\
Fine-tune a causal LM with (Q)LoRA on the RAG dataset (TRL SFTTrainer, prompt-completion rows, loss on the
answer tokens + EOS only) and write the run folder: adapter/, checkpoint-*/, trainer_state.json,
train_config.yaml, train_summary.json, README.md (model card). Without --config it trains the embedded
{EMBEDDED_MODEL_ID} on CPU with the preset {CPU_PRESET_PATH} on the sample dataset.

Layers: defaults (the reference recipe) <- --config YAML <- --section.key flags.
Distributed: accelerate launch --config_file training_space/accelerate_configs/multi_gpu_ddp.yaml \\
             -m rag_de train --config {GPU_PRESET_PATH} ...
"""


def _train(args: argparse.Namespace) -> int:
    from training_space.train import load_config, train

    # A ConfigError (a UserError) reaches rag_de.cli.main, which prints it in the one error format.
    train(load_config(args.config, _train_overrides(args)), resume=args.resume)
    return 0


def _train_overrides(args: argparse.Namespace) -> dict:
    overrides = config_lib.overrides_from_args(args)
    shortcuts = {"dataset": ("data", "dataset"), "hub_model_id": ("hub", "model_id"),
                 "output_dir": ("training", "output_dir"), "base_model": ("model", "name")}
    for attr, (section, key) in shortcuts.items():
        value = getattr(args, attr, None)
        if value:
            overrides.setdefault(section, {})[key] = value
    return overrides


def _export_autotrain(args: argparse.Namespace) -> int:
    from training_space.autotrain import export_autotrain
    from training_space.train import load_config

    config = load_config(args.config, _train_overrides(args))
    path = export_autotrain(config, args.out, project_name=args.project_name, source=args.config or "the CPU preset")
    print(f"wrote {path}; run it with: autotrain --config {path}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from training_space.deploy import deploy_training_space

    url = deploy_training_space(args.space, hardware=args.hardware, private=args.private,
                                dataset=args.dataset, base_model=args.base_model,
                                hub_model_id=args.hub_model_id, train_config=args.preset)
    print(f"training Space: {url}")
    return 0


def register(commands, deploy) -> None:
    from training_space.config import TrainConfig

    train = commands.add_parser(
        "train", help="QLoRA/LoRA fine-tuning (TRL SFTTrainer) -> run folder + adapter on the Hub",
        description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", help=f"TrainConfig YAML (default: the CPU preset {CPU_PRESET_PATH})")
    train.add_argument("--dataset", help="shortcut for --data.dataset: Hub id or local parquet folder")
    train.add_argument("--hub-model-id", help="shortcut for --hub.model_id: push the adapter + card here")
    train.add_argument("--output-dir", help="shortcut for --training.output_dir: the run folder")
    train.add_argument("--base-model", help="shortcut for --model.name")
    train.add_argument("--resume", action="store_true",
                       help="continue from the last checkpoint in the run folder, or from the Hub repo's "
                            "last-checkpoint/ (pushed with --hub.push_each_save) when there is none locally")
    config_lib.add_dataclass_arguments(train, TrainConfig)
    train.set_defaults(func=_train)

    export = commands.add_parser(
        "export-autotrain", help="write the equivalent AutoTrain Advanced llm-sft YAML",
        description="Translate a TrainConfig into an AutoTrain Advanced `llm-sft` config (base model, dataset "
        "repo, chat template, int4, LoRA r/alpha/dropout/targets, lr, epochs, block size), so the same run "
        "can be started with `autotrain --config autotrain.yaml` or on an AutoTrain Space.")
    export.add_argument("--config", help="TrainConfig YAML (default: the CPU preset)")
    export.add_argument("--dataset", help="shortcut for --data.dataset: the Hub dataset id AutoTrain reads")
    export.add_argument("--hub-model-id", help="shortcut for --hub.model_id (names the AutoTrain project)")
    export.add_argument("--out", required=True, help="where to write the AutoTrain YAML")
    export.add_argument("--project-name", default=None, help="AutoTrain project name (default: from hub id)")
    config_lib.add_dataclass_arguments(export, TrainConfig)
    export.set_defaults(func=_export_autotrain)

    space = deploy.add_parser(
        "training-space", help="create/update the Gradio training Space",
        description="Create (or update) a Gradio Space that starts `rag-de train` jobs in a subprocess, streams "
        "the log, plots the loss and links the pushed adapter. App, requirements, card and the project packages "
        "go up in one commit; hardware and variables are set through the API (no token in any file).")
    space.add_argument("--space", required=True, help="Space repo id, e.g. org/spaces-rag-de-train")
    space.add_argument("--hardware", default=None,
                       help="request Space hardware (e.g. t4-small, a10g-small, l4x1); default: leave as is")
    space.add_argument("--private", action="store_true", help="create the Space as private")
    space.add_argument("--dataset", default=None, help="default dataset repo shown in the app")
    space.add_argument("--base-model", default=None, help="default base model shown in the app")
    space.add_argument("--hub-model-id", default=None, help="default adapter repo the jobs push to")
    space.add_argument("--preset", default=None, choices=list(PRESETS),
                       help="default preset in the app (default: GPU preset on GPU hardware, else CPU)")
    space.set_defaults(func=_deploy)
