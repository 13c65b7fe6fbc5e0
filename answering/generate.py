"""Batched greedy generation for one model (base or base + adapter): evaluation's free generation and the
answer modes' text after a forced lead.

Prompts are the contract's inference text, tokenized with `add_special_tokens=False` and left-padded, so
every row's last prompt token sits at the same position and generation starts together.
"""

from __future__ import annotations

from typing import Sequence

from rag_de.modeling import eos_ids


def generate_batch(model, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    import torch
    from transformers import GenerationConfig

    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids(model, tokenizer))
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=config)
    new_tokens = out[:, enc["input_ids"].shape[1]:]
    return [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
