"""`rag_de.modeling.dequantize_4bit_on_cpu`: the same values as bitsandbytes' 4-bit CPU forward, done once."""

from __future__ import annotations

import pytest

from helpers import build_model_dir, greedy, logits, prompts, save_lora


@pytest.fixture(scope="module")
def nf4_with_lora(tmp_path_factory):
    from rag_de.modeling import LoadQuantizationConfig, load_adapter, load_causal_lm, load_tokenizer

    work = tmp_path_factory.mktemp("dequant")
    base = build_model_dir(work / "base")
    adapter = save_lora(base, work / "adapter", str(base))

    def load():
        tokenizer = load_tokenizer(str(base))
        model = load_causal_lm(str(base), LoadQuantizationConfig(kind="nf4", compute_dtype="float32"),
                               dtype="float32", device="cpu", tokenizer=tokenizer)
        return load_adapter(model, str(adapter)).eval(), tokenizer

    return load


def largest_difference(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def test_dequantized_layers_compute_what_bitsandbytes_computes(nf4_with_lora):
    import bitsandbytes as bnb

    from rag_de.modeling import dequantize_4bit_on_cpu

    model, tokenizer = nf4_with_lora()
    texts = prompts(tokenizer)
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 14   # 7 linear layers in each of 2 blocks, each under a LoRA layer
    for layer in four_bit:   # bitsandbytes' exact fp32 CPU path (see below for its AVX512-BF16 kernel)
        layer.support_avx512bf16_for_cpu = False
    before, answers = logits(model, tokenizer, texts), greedy(model, tokenizer, texts)

    assert dequantize_4bit_on_cpu(model) is True
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert largest_difference(logits(model, tokenizer, texts), before) < 1e-5
    assert greedy(model, tokenizer, texts) == answers
    with model.disable_adapter():   # the LoRA layers still switch off and on around the plain base layers
        assert largest_difference(logits(model, tokenizer, texts), before) > 1e-3


def test_dequantize_after_bitsandbytes_repacked_for_its_cpu_kernel(nf4_with_lora):
    """On CPUs with AVX512-BF16 bitsandbytes repacks the 4-bit weights at the first inference forward (and
    computes in bfloat16); dequantizing such a model must undo the packing, not read it as NF4 codes."""
    import bitsandbytes as bnb

    from rag_de.modeling import dequantize_4bit_on_cpu

    reference, tokenizer = nf4_with_lora()
    for layer in (m for m in reference.modules() if isinstance(m, bnb.nn.Linear4bit)):
        layer.support_avx512bf16_for_cpu = False
    texts = prompts(tokenizer)
    exact = logits(reference, tokenizer, texts)

    model, _ = nf4_with_lora()
    logits(model, tokenizer, texts)   # repacks where the CPU has the kernel
    assert dequantize_4bit_on_cpu(model) is True
    assert largest_difference(logits(model, tokenizer, texts), exact) < 0.05   # bfloat16 absmax, not garbage


def test_dequantize_keeps_4bit_when_it_would_not_fit(nf4_with_lora):
    import bitsandbytes as bnb

    from rag_de.modeling import dequantize_4bit_on_cpu

    model, _ = nf4_with_lora()
    assert dequantize_4bit_on_cpu(model, max_memory_share=1e-12) is False
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 14
