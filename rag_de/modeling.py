"""Loading a base model (4-bit NF4 or not), its tokenizer and a PEFT adapter: one way, used everywhere.

Training, evaluation and the demo call these helpers so that "the same 4-bit load" really is the same.
bitsandbytes' 4-bit NF4 load, generate and LoRA backward run on CPU as well as CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rag_de.base_model import resolve

Quantization = Literal["nf4", "fp4", "none"]
# `dequantize_4bit_on_cpu` keeps the 4-bit layers when their dequantized weights would take more than this
# share of the machine's memory (the rest is for activations, the KV cache and the data).
DEQUANTIZE_MAX_MEMORY_SHARE = 0.25


@dataclass
class LoadQuantizationConfig:
    """The reference recipe's bitsandbytes settings (NF4, double quantization, bf16 compute)."""

    kind: Quantization = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    # Modules kept unquantized (the output head stays in full precision, as in QLoRA).
    skip_modules: tuple[str, ...] = ("lm_head",)


def torch_dtype(name: str):
    import torch

    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use float32, bfloat16 or float16") from None


def bnb_config(config: LoadQuantizationConfig):
    """A `BitsAndBytesConfig` for the settings, or None when `kind == "none"`."""
    if config.kind == "none":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.kind,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=torch_dtype(config.compute_dtype),
        llm_int8_skip_modules=list(config.skip_modules) or None,
    )


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_compute_dtype(compute_dtype: str, device: str | None = None) -> str:
    """`auto` -> bfloat16 on CUDA, float32 elsewhere (bf16 matmuls are ~2x slower on CPUs without AMX).

    Evaluation and the demo resolve it the same way, so "the same 4-bit load" runs in the same dtype.
    """
    if compute_dtype != "auto":
        return compute_dtype
    return "bfloat16" if (device or default_device()).startswith("cuda") else "float32"


def eos_ids(model, tokenizer) -> list[int]:
    """Stop tokens: the tokenizer's EOS plus any the model's generation config names (e.g. <|im_end|>)."""
    ids = [tokenizer.eos_token_id]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids += configured if isinstance(configured, (list, tuple)) else [configured]
    return sorted({i for i in ids if i is not None})


# Existing tokens that can serve as padding without growing the vocabulary, in order of preference.
PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "<|endoftext|>", "<unk>")


def load_tokenizer(name_or_path: str, revision: str | None = None, padding_side: str = "left"):
    """The tokenizer with a pad token distinct from EOS.

    A pad token equal to EOS makes collators mask the EOS label, and the model never learns to stop;
    when the tokenizer has none (or shares EOS), an existing unused special token is reused, or a
    `<|pad|>` token is added (callers then resize embeddings: see `load_causal_lm`).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(name_or_path), revision=revision)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        for candidate in PAD_CANDIDATES:
            if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
                tokenizer.pad_token = candidate
                break
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(name_or_path: str, quantization: LoadQuantizationConfig | None = None,
                   dtype: str = "float32", device: str | None = None, revision: str | None = None,
                   attn_implementation: str | None = None, tokenizer=None):
    """Load the base model, 4-bit when `quantization.kind != "none"`, on `device` (default: cuda if any)."""
    from transformers import AutoModelForCausalLM

    quantization = quantization or LoadQuantizationConfig(kind="none")
    device = device or default_device()
    kwargs = {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(
        resolve(name_or_path), revision=revision, dtype=torch_dtype(dtype),
        quantization_config=bnb_config(quantization), device_map={"": device}, **kwargs,
    )
    if tokenizer is not None:
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def load_adapter(model, adapter: str, revision: str | None = None, is_trainable: bool = False):
    """Wrap `model` with the PEFT adapter at `adapter` (Hub id or local folder)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, adapter, revision=revision, is_trainable=is_trainable)


def dequantize_4bit_on_cpu(model, max_memory_share: float = DEQUANTIZE_MAX_MEMORY_SHARE) -> bool:
    """On CPU, replace every bitsandbytes 4-bit linear layer (also one under a LoRA layer) by a plain linear
    layer holding its dequantized weights, in place, for inference. True when it did; False (model untouched)
    on CUDA, without 4-bit layers, or when the dequantized weights would take more than `max_memory_share`
    of the machine's memory (a 7B model: ~28 GB in float32).

    Why: bitsandbytes' CPU 4-bit forward dequantizes the whole weight on every call and then runs an ordinary
    matmul, so doing it once computes the very same values (max |logit difference| 0.0 on the quickstart
    adapter, greedy answers identical) without paying the dequantization on each of a generation's calls
    (`scripts/bench_evidence.py` measures it). On CPUs with AVX512-BF16, bitsandbytes repacks the weights for a
    bfloat16 kernel at the first inference forward; the packing is undone here first (its absmax stays
    bfloat16-rounded, so dequantize before the first forward for the exact values). Training keeps bitsandbytes (its backward needs the 4-bit
    layers), and so do GPUs (their 4-bit kernels are fast).
    """
    import os

    import bitsandbytes as bnb
    import torch

    layers = [(module, name, child) for module in model.modules() for name, child in module.named_children()
              if isinstance(child, bnb.nn.Linear4bit) and child.weight.device.type == "cpu"]
    if not layers:
        return False
    dtypes = {child: child.compute_dtype or torch.float32 for _, _, child in layers}
    size = sum(child.in_features * child.out_features * dtypes[child].itemsize for _, _, child in layers)
    if size > max_memory_share * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"):
        return False
    for module, name, child in layers:
        dtype = dtypes[child]
        data, state = child.weight.data, child.weight.quant_state
        if getattr(state, "packing_format_for_cpu", False):
            # On CPUs with AVX512-BF16, bitsandbytes repacks the 4-bit weight for its own kernel at the first
            # inference forward; dequantize_4bit reads the original layout, so undo the packing first.
            data, state = bnb.functional._convert_weight_packed_for_cpu_inverse(data, state)
        weight = bnb.functional.dequantize_4bit(data, state).to(dtype)
        plain = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None,
                                dtype=dtype, device=weight.device)
        plain.weight = torch.nn.Parameter(weight, requires_grad=False)
        if child.bias is not None:
            plain.bias = torch.nn.Parameter(child.bias.data.to(dtype), requires_grad=False)
        setattr(module, name, plain)
    return True
