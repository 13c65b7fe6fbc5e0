"""Writer (b): a local `transformers` causal LM with its chat template, generating in batches.

The model is loaded with the project's one loader (`rag_de.modeling`), optionally in 4-bit NF4;
generation is greedy so the same model gives the same answers.
"""

from __future__ import annotations

from typing import Sequence

from dataset_builder.build_config import TransformersWriterConfig
from dataset_builder.writers.base import AnswerWriter, WriteRequest
from dataset_builder.writers.prompt import writer_messages


class TransformersWriter(AnswerWriter):
    name = "transformers"

    def __init__(self, config: TransformersWriterConfig):
        import torch

        from rag_de.modeling import LoadQuantizationConfig, default_device, load_causal_lm, load_tokenizer

        self.config = config
        device = default_device() if config.device == "auto" else config.device
        dtype = config.dtype if config.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
        self.tokenizer = load_tokenizer(config.model, padding_side="left")
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"writer model {config.model}: its tokenizer has no chat template; use an "
                             "instruct/chat model for --writer transformers")
        quant = LoadQuantizationConfig(kind="nf4" if config.load_in_4bit else "none")
        self.model = load_causal_lm(config.model, quant, dtype=dtype, device=device, tokenizer=self.tokenizer)
        self.model.eval()
        self._torch = torch
        self.generated = 0

    def write(self, requests: Sequence[WriteRequest]) -> list[str | None]:
        out: list[str | None] = []
        for i in range(0, len(requests), self.config.batch_size):
            out.extend(self._generate(requests[i:i + self.config.batch_size]))
        return out

    def _generate(self, batch: Sequence[WriteRequest]) -> list[str]:
        tok = self.tokenizer
        prompts = [tok.apply_chat_template(writer_messages(r), tokenize=False, add_generation_prompt=True)
                   for r in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        with self._torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.config.max_new_tokens, do_sample=False,
                                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        self.generated += len(batch)
        new = out[:, enc["input_ids"].shape[1]:]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]

    def stats(self) -> dict:
        return {"model": self.config.model, "generated": self.generated, "batch_size": self.config.batch_size}
