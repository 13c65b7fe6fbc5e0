"""Writer (b): a local `transformers` causal LM with its chat template, generating in batches.

The model is loaded with the project's one loader (`rag_de.modeling`), optionally in 4-bit NF4;
generation is greedy so the same model gives the same answers. `LocalChatModel` is the generation part,
shared with question generation (`dataset_builder.questions`), which also caches its replies on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dataset_builder.build_config import TransformersWriterConfig
from dataset_builder.writers.base import AnswerWriter, WriteRequest
from dataset_builder.writers.cache import ResponseCache, cache_key
from dataset_builder.writers.prompt import writer_messages


class LocalChatModel:
    """Messages lists in, greedy replies out, `batch_size` at a time; with `cache_dir`, each batch's
    replies are cached (ResponseCache) so a killed run resumes where it stopped."""

    def __init__(self, config: TransformersWriterConfig, max_new_tokens: int | None = None,
                 cache_dir: str | Path | None = None):
        import torch

        from rag_de.modeling import LoadQuantizationConfig, default_device, load_causal_lm, load_tokenizer

        self.config = config
        self.max_new_tokens = max_new_tokens or config.max_new_tokens
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
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
        self.cache_hits = 0

    def complete(self, messages: Sequence[list[dict]]) -> list[str | None]:
        params = {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        keys = [cache_key(self.config.model, m, params) for m in messages]
        out: list[str | None] = [self.cache.get(k) if self.cache else None for k in keys]
        self.cache_hits += sum(o is not None for o in out)
        todo = [i for i, o in enumerate(out) if o is None]
        for b in range(0, len(todo), self.config.batch_size):
            batch = todo[b:b + self.config.batch_size]
            for i, text in zip(batch, self._generate([messages[i] for i in batch])):
                out[i] = text
                if self.cache is not None:
                    self.cache.put(keys[i], text, self.config.model)
        return out

    def _generate(self, batch: Sequence[list[dict]]) -> list[str]:
        tok = self.tokenizer
        prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        with self._torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        self.generated += len(batch)
        new = out[:, enc["input_ids"].shape[1]:]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]

    def stats(self) -> dict:
        return {"model": self.config.model, "generated": self.generated, "batch_size": self.config.batch_size,
                **({"cache_hits": self.cache_hits} if self.cache is not None else {})}

    def close(self) -> None:
        pass


class TransformersWriter(AnswerWriter):
    name = "transformers"

    def __init__(self, config: TransformersWriterConfig):
        self.chat = LocalChatModel(config)

    def write(self, requests: Sequence[WriteRequest]) -> list[str | None]:
        return self.chat.complete([writer_messages(r) for r in requests])

    def stats(self) -> dict:
        return self.chat.stats()
