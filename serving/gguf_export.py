"""Write a merged llama-family model as one GGUF file with the `gguf` package (llama.cpp's own writer).

Tensor names, hyperparameter keys, the q/k row permutation and the per-tensor types follow llama.cpp's
convert_hf_to_gguf.py (`LlamaModel`), so llama.cpp, Ollama and transformers' GGUF loader (which undoes the
permutation, see `LlamaTensorProcessor` in transformers/modeling_gguf_pytorch_utils.py) all read it. The file
is streamed tensor by tensor into a temp file and renamed at the end: memory stays at one tensor beyond the
model, and a killed export leaves no half file behind.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.config import ExportError
from serving.gguf_vocab import add_vocab, build_vocab

QUANT_BLOCK = 32  # Q8_0 block: a row whose length is not a multiple of it stays f16, as in llama.cpp


@dataclass
class GGUFTensorPlan:
    gguf_name: str
    hf_name: str | None          # None: computed (rope_freqs)
    qtype: object                # gguf.GGMLQuantizationType
    shape: tuple[int, ...]


def permute_qk(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's reordering of q/k rows (HF's rotate-half layout -> GGML's interleaved pairs)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _rope(config) -> dict:
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return dict(rope) if isinstance(rope, dict) else {}


def rope_theta(config) -> float:
    return float(_rope(config).get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def head_dim(config) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def llama3_rope_factors(config) -> np.ndarray:
    """The `rope_freqs` tensor llama.cpp writes for Llama 3.1-style rope scaling."""
    rope = _rope(config)
    dim, base = head_dim(config), rope_theta(config)
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


def add_hparams(writer, config, file_type) -> None:
    import gguf

    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim(config))
    if head_dim(config) != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))
    rope = _rope(config)
    if rope.get("rope_type", rope.get("type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    writer.add_file_type(file_type)
    if file_type not in (gguf.LlamaFileType.ALL_F32, gguf.LlamaFileType.MOSTLY_F16):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def tensor_plan(state_dict, config, dtype: str) -> list[GGUFTensorPlan]:
    import gguf

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    wanted = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
              "q8_0": gguf.GGMLQuantizationType.Q8_0}[dtype]
    tied = bool(getattr(config, "tie_word_embeddings", False))
    plans = []
    rope = _rope(config)
    if rope.get("rope_type", rope.get("type")) == "llama3":
        plans.append(GGUFTensorPlan("rope_freqs.weight", None, gguf.GGMLQuantizationType.F32, (head_dim(config) // 2,)))
    for hf_name, tensor in state_dict.items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when there is no output.weight
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        stem, _, suffix = hf_name.rpartition(".")
        gguf_stem = name_map.get_name(stem)
        if gguf_stem is None:
            raise ExportError(f"no llama.cpp name for tensor {hf_name}, the merged model's state dict, export it "
                              "with `rag-de export merged` and convert with llama.cpp's convert_hf_to_gguf.py")
        shape = tuple(tensor.shape)
        if len(shape) == 1:
            qtype = gguf.GGMLQuantizationType.F32
        elif wanted == gguf.GGMLQuantizationType.Q8_0 and shape[-1] % QUANT_BLOCK:
            qtype = gguf.GGMLQuantizationType.F16
        else:
            qtype = wanted
        plans.append(GGUFTensorPlan(f"{gguf_stem}.{suffix}", hf_name, qtype, shape))
    return plans


def tensor_data(plan: GGUFTensorPlan, state_dict, config) -> np.ndarray:
    import gguf

    if plan.hf_name is None:
        return llama3_rope_factors(config)
    data = state_dict[plan.hf_name].detach().float().cpu().numpy()
    n_head = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_head
    if plan.hf_name.endswith("q_proj.weight") or plan.hf_name.endswith("q_proj.bias"):
        data = permute_qk(data, n_head, n_head)
    elif plan.hf_name.endswith("k_proj.weight") or plan.hf_name.endswith("k_proj.bias"):
        data = permute_qk(data, n_head, n_kv)
    return gguf.quants.quantize(np.ascontiguousarray(data), plan.qtype)


def file_type_for(dtype: str):
    import gguf

    return {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]


def write_gguf(model, tokenizer, path: Path, dtype: str, name: str, base: str) -> dict:
    """Write `model` (a merged LlamaForCausalLM/MistralForCausalLM) and `tokenizer` to `path`."""
    import gguf

    config = model.config
    state_dict = model.state_dict()
    plans = tensor_plan(state_dict, config, dtype)
    vocab = build_vocab(tokenizer, config.vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name)
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base)
        add_hparams(writer, config, file_type_for(dtype))
        add_vocab(writer, vocab)
        for p in plans:
            if p.qtype == gguf.GGMLQuantizationType.Q8_0:
                byte_shape = gguf.quants.quant_shape_to_byte_shape(p.shape, p.qtype)
                writer.add_tensor_info(p.gguf_name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)),
                                       raw_dtype=p.qtype)
            else:
                np_dtype = np.dtype(np.float16 if p.qtype == gguf.GGMLQuantizationType.F16 else np.float32)
                writer.add_tensor_info(p.gguf_name, p.shape, np_dtype, int(np.prod(p.shape)) * np_dtype.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for p in plans:
            writer.write_tensor_data(tensor_data(p, state_dict, config))
        writer.flush()
        os.fsync(writer.fout[0].fileno())
        writer.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    counts = {}
    for p in plans:
        counts[p.qtype.name] = counts.get(p.qtype.name, 0) + 1
    return {"tensors": len(plans), "tensor_types": counts, "bytes": path.stat().st_size,
            "tokenizer_model": vocab.model, "tokenizer_pre": vocab.pre}
