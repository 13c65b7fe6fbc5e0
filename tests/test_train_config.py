"""TrainConfig: the reference recipe as defaults, the presets, CLI layering, contradictions rejected early,
and the AutoTrain export."""

from __future__ import annotations

import pytest
import yaml

from rag_de import config as config_lib
from rag_de.base_model import EMBEDDED_MODEL_ID
from rag_de.cli import build_parser
from rag_de.config import ConfigError
from training_space import config as tconfig
from training_space.autotrain import autotrain_config, export_autotrain
from training_space.cli import _train_overrides
from training_space.config import CPU_PRESET, GPU_PRESET, PRESETS, TrainConfig, validate
from training_space.train import load_config


def test_defaults_are_the_reference_recipe():
    config = TrainConfig()
    assert (config.lora.r, config.lora.alpha, config.lora.dropout, config.lora.bias) == (12, 10, 0.1, "none")
    assert config.lora.task_type == "CAUSAL_LM" and config.lora.target_modules == ["all-linear"]
    assert (config.quantization.kind, config.quantization.double_quant, config.quantization.compute_dtype) == \
        ("nf4", True, "bfloat16")
    assert config.training.learning_rate == 2e-4 and config.training.optim == "paged_adamw_32bit"
    assert config.training.load_best_model_at_end and config.training.metric_for_best_model == "eval_loss"
    assert config.training.gradient_checkpointing


def test_no_config_means_the_cpu_preset_with_4bit_qlora():
    config = load_config(None)
    assert config.model.name == EMBEDDED_MODEL_ID
    assert config.quantization.kind == "nf4" and config.quantization.compute_dtype == "float32"
    assert config.training.bf16 is False and config.model.dtype == "float32"
    validate(config, "cpu")


def test_gpu_preset_loads_and_validates_on_a_bf16_gpu(monkeypatch):
    monkeypatch.setattr(tconfig, "cuda_supports_bf16", lambda: True)
    config = load_config(GPU_PRESET)
    assert config.data.packing and config.training.use_liger_kernel and config.training.bf16
    assert config.model.attn_implementation in ("flex_attention", "sdpa", "flash_attention_2")
    assert (config.lora.r, config.lora.alpha) == (12, 10)
    validate(config, "cuda")


def test_cli_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"training": {"learning_rate": 1e-4, "max_steps": 7}}))
    args = build_parser().parse_args(["train", "--config", str(path), "--training.max_steps", "3",
                                      "--lora.r", "16", "--data.packing", "--dataset", "org/ds",
                                      "--hub-model-id", "org/adapter", "--output-dir", "out"])
    config = load_config(args.config, _train_overrides(args))
    assert config.training.learning_rate == 1e-4          # from YAML
    assert config.training.max_steps == 3                 # flag beats YAML
    assert config.lora.r == 16 and config.lora.alpha == 10  # flag / default
    assert config.data.packing is True
    assert (config.data.dataset, config.hub.model_id, config.training.output_dir) == ("org/ds", "org/adapter", "out")


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("lora:\n  rank: 8\n")
    with pytest.raises(ConfigError, match=r"typo.yaml.lora: unknown key\(s\) \['rank'\].*allowed keys: \[.*'r'"):
        load_config(path)
    path.write_text("trianing:\n  max_steps: 8\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['trianing'\]"):
        load_config(path)


@pytest.mark.parametrize("overrides, message", [
    ({"data": {"packing": True, "collator": "x:Y"}}, "packing=true with a custom data.collator"),
    ({"training": {"bf16": True}}, "training.bf16=true on device 'cpu'"),
    ({"training": {"fp16": True}}, "fp16=true needs a CUDA GPU"),
    ({"training": {"use_liger_kernel": True}}, "use_liger_kernel=true needs a CUDA GPU"),
    ({"training": {"save_steps": 15, "eval_steps": 10, "load_best_model_at_end": True}}, "save_steps=15 must be a multiple"),
    ({"data": {"packing": True}, "model": {"attn_implementation": "eager"}}, "packing=true with model.attn"),
    ({"model": {"attn_implementation": "flex_attention"}}, "flex_attention on device 'cpu'.*no backward"),
    ({"tracking": {"report_to": ["mlflowx"]}}, "unknown tracker"),
])
def test_contradictions_are_config_errors(overrides, message, monkeypatch):
    monkeypatch.setattr(tconfig, "cpu_supports_bf16", lambda: False)
    config = load_config(None, overrides)
    with pytest.raises(ConfigError, match=message):
        validate(config, "cpu")


def test_bf16_model_dtype_on_a_cpu_without_bf16_fails_before_any_load(monkeypatch, tmp_path):
    import rag_de.modeling

    from training_space import train as train_mod

    monkeypatch.setattr(tconfig, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(rag_de.modeling, "load_tokenizer", lambda *a, **k: pytest.fail("tokenizer loaded"))
    monkeypatch.setattr(rag_de.modeling, "load_causal_lm", lambda *a, **k: pytest.fail("model loaded"))
    config = load_config(None, {"model": {"dtype": "bfloat16"}, "training": {"device": "cpu"}})
    with pytest.raises(ConfigError, match="model.dtype=bfloat16 on cpu without native bf16"):
        train_mod.build_trainer(config)


def test_4bit_under_fsdp_is_refused(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="quantization.kind=nf4 under fsdp"):
        validate(load_config(None), "cpu")
    validate(load_config(None, {"quantization": {"kind": "none"}}), "cpu")


def test_cli_returns_2_with_the_config_error(tmp_path, capsys):
    from rag_de.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  packing: true\n  collator: mod:Cls\n")
    assert main(["train", "--config", str(path)]) == 2
    assert capsys.readouterr().err.startswith("rag-de train: error: data.packing=true with a custom data.collator")


def test_export_autotrain_maps_the_recipe(tmp_path):
    config = load_config(GPU_PRESET, {"data": {"dataset": "org/spaces-rag-de"},
                                    "hub": {"model_id": "org/sauerkraut-rag-de"}})
    out = export_autotrain(config, tmp_path / "autotrain.yaml", source="gpu-mistral7b-24gb.yaml")
    text = out.read_text()
    assert "answer + EOS only" in text   # the documented difference is in the file
    data = yaml.safe_load(text)
    assert data["task"] == "llm-sft" and data["base_model"] == "VAGOsolutions/SauerkrautLM-7b-v1-mistral"
    assert data["project_name"] == "sauerkraut-rag-de"
    assert data["data"] == {"path": "org/spaces-rag-de", "train_split": "train", "valid_split": "validation",
                            "chat_template": "tokenizer", "column_mapping": {"text_column": "messages"}}
    p = data["params"]
    assert (p["peft"], p["quantization"], p["lora_r"], p["lora_alpha"], p["lora_dropout"]) == \
        (True, "int4", 12, 10, 0.1)
    assert p["target_modules"] == "all-linear" and p["lr"] == 2e-4 and p["epochs"] == 2
    assert p["block_size"] == 4096 and p["optimizer"] == "paged_adamw_32bit" and p["mixed_precision"] == "bf16"
    assert data["hub"]["token"] == "${HF_TOKEN}" and data["hub"]["push_to_hub"] is True


def test_export_autotrain_cli_and_local_dataset_error(tmp_path, capsys):
    from rag_de.cli import main

    out = tmp_path / "a.yaml"
    assert main(["export-autotrain", "--dataset", "org/spaces-rag-de", "--out", str(out)]) == 0
    params = yaml.safe_load(out.read_text())["params"]
    assert params["quantization"] == "int4" and params["lr"] == load_config(None).training.learning_rate
    with pytest.raises(ConfigError, match="AutoTrain reads the dataset from the Hub"):
        autotrain_config(load_config(None, {"data": {"dataset": str(tmp_path)}}))


def test_presets_are_valid_yaml_with_only_known_keys():
    assert PRESETS["cpu-smollm2"] == CPU_PRESET and PRESETS["gpu-mistral7b-24gb"] == GPU_PRESET
    for preset in PRESETS.values():
        config_lib.from_dict(TrainConfig, config_lib.read_yaml(preset), where=str(preset))


def test_quantization_fallback_leaves_the_config_alone(monkeypatch):
    from training_space import train as train_mod

    monkeypatch.setattr(train_mod, "bnb_4bit_works", lambda device: False)
    config = load_config(None)
    quant, note = train_mod.quantization_settings(config, "cpu")
    assert quant.kind == "none" and "nf4 -> none" in note
    assert config.quantization.kind == "nf4"          # no hidden side effect on the config it was given
    config.quantization.cpu_fallback = False
    with pytest.raises(ConfigError, match="bitsandbytes 4-bit does not run on cpu"):
        train_mod.quantization_settings(config, "cpu")
    optim, note = train_mod.optimizer_for(config, "cpu")
    assert optim == "adamw_torch" and "paged_adamw_32bit -> adamw_torch" in note
    assert config.training.optim == "paged_adamw_32bit"
    assert train_mod.optimizer_for(config, "cuda") == ("paged_adamw_32bit", None)


def test_a_wrong_config_fails_before_torch_is_imported(tmp_path):
    """`rag-de train` with a contradictory config exits 2 without ever importing torch (seconds, not a load)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from rag_de.cli import main\n"
            "rc = main(['train', '--data.max_length', '4', '--output-dir', sys.argv[1]])\n"
            "print('torch' in sys.modules, rc)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == ["False", "2"], result.stderr
    assert "data.max_length=4 is too short" in result.stderr
