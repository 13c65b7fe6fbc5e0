"""Loading base + adapter once, and streaming an answer token by token.

Two decode paths with the same greedy output:

* plain: `model.generate` with a `TextIteratorStreamer` (used on CPU);
* fast: a static KV cache and a `torch.compile`d decode step (CUDA graphs with "reduce-overhead").
  transformers does not auto-compile bitsandbytes 4-bit models inside `generate`, and at batch 1 a
  7B model then spends most of each token in Python/kernel-launch overhead; replaying one captured
  graph per token removes that. The prefill runs uncompiled (its shape changes with every prompt).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterator

from demo_space.settings import DemoConfig
from rag_de.modeling import eos_ids


@dataclass
class Sampling:
    """Per-request generation settings (the accordion's sliders)."""

    max_new_tokens: int = 160
    temperature: float = 0.0   # 0 = greedy
    top_p: float = 0.9

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def load_model(config: DemoConfig):
    """(model, tokenizer) as the settings say: base in 4-bit via `rag_de.modeling`, plus the adapter; on a CPU
    Space the 4-bit weights are dequantized once (`dequantize_4bit_on_cpu`: same values, faster answers)."""
    from rag_de.modeling import (LoadQuantizationConfig, default_device, dequantize_4bit_on_cpu, load_adapter,
                                 load_causal_lm, load_tokenizer, resolve_compute_dtype)

    device = config.device or default_device()
    dtype = resolve_compute_dtype(config.compute_dtype, device)
    tokenizer = load_tokenizer(config.base_model, padding_side="left")
    quant = LoadQuantizationConfig(kind=config.quantization, compute_dtype=dtype)
    model = load_causal_lm(config.base_model, quant, dtype=dtype, device=device, tokenizer=tokenizer)
    if config.adapter:
        model = load_adapter(model, config.adapter, revision=config.adapter_revision)
    model.eval()
    dequantize_4bit_on_cpu(model)
    return model, tokenizer


def use_fast_path(config: DemoConfig, device_type: str) -> bool:
    return config.fast_generation == "on" or (config.fast_generation == "auto" and device_type == "cuda")


class Generator:
    """Streams answers from one loaded model; one generation at a time (the adapter switch is global)."""

    def __init__(self, model, tokenizer, config: DemoConfig):
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.device = next(model.parameters()).device
        self.fast = use_fast_path(config, self.device.type)
        self.compile = self.fast and self.device.type == "cuda"
        self._lock = threading.Lock()
        self._step = None
        self._cache = None
        self._torch = torch

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.model, "disable_adapter") and hasattr(self.model, "peft_config")

    def _adapter_context(self, use_adapter: bool):
        return self.model.disable_adapter() if (self.has_adapter and not use_adapter) else nullcontext()

    def decide(self, question: str, chunks, threshold, bm25_scores=()) -> int | None:
        """The adapter's decision (`answering.decision`, the reading the threshold was tuned for):
        the chunk number to cite, or None to refuse. `fused` needs the retrieval's BM25 scores of `chunks`
        (the demo's index over the dataset's chunks: IDF close to, not equal to, the tuning split's)."""
        from dataset_builder.contract import render_prompt_text
        from answering.decision import MODEL_READING, decide, decide_by_evidence

        if not chunks:
            return None
        with self._lock, self._adapter_context(True):
            if MODEL_READING[threshold.mode] == "evidence":
                decision = decide_by_evidence(self.model, self.tokenizer, question, chunks)
                if threshold.mode == "fused":
                    decision = threshold.fusion.fuse(decision, list(bm25_scores))
            else:
                prompt = render_prompt_text(self.tokenizer, question, chunks)
                decision = decide(self.model, self.tokenizer, [prompt], [len(chunks)])[0]
        return None if decision.refuses(threshold.refusal_threshold) else decision.citation

    def decided_answer(self, question: str, chunks, number: int) -> str | None:
        """What `rag-de evaluate`'s decided pipeline answers once it cites chunk `number`: that chunk's sentence
        sharing the most question words, in the dataset's answer form (`extracted_answer`; the model
        breaks ties); None for a chunk without sentences (the answer is then generated after the forced lead)."""
        from answering.answer import extracted_answer

        with self._lock, self._adapter_context(True):
            return extracted_answer(lambda: self.model, self.tokenizer, question, list(chunks), number)

    def encode(self, prompt_text: str):
        # The contract's prompt text already holds the chat template's special tokens.
        return self.tokenizer(prompt_text, return_tensors="pt", add_special_tokens=False).input_ids.to(self.device)

    def stream(self, prompt_text: str, sampling: Sampling, use_adapter: bool = True) -> Iterator[str]:
        """Yield the answer text decoded so far, growing token by token."""
        input_ids = self.encode(prompt_text)
        with self._lock:
            if self.fast and self._fits_cache(input_ids, sampling):
                yield from self._stream_fast(input_ids, sampling, use_adapter)
            else:
                yield from self._stream_plain(input_ids, sampling, use_adapter)

    # -- plain path ------------------------------------------------------------------------------
    def _stream_plain(self, input_ids, sampling: Sampling, use_adapter: bool) -> Iterator[str]:
        streamer = token_streamer(self.tokenizer)
        kwargs = dict(input_ids=input_ids, attention_mask=self._torch.ones_like(input_ids), streamer=streamer,
                      max_new_tokens=sampling.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                      do_sample=not sampling.greedy)
        if not sampling.greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def run():
            try:
                with self._torch.inference_mode(), self._adapter_context(use_adapter):
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        thread.join()
        if errors:
            raise errors[0]

    # -- fast path -------------------------------------------------------------------------------
    def _decode_step(self):
        """The model's forward for one new token; compiled on CUDA (built once, reused per request)."""
        if self._step is None:
            forward = self._base_model().forward
            self._step = (self._torch.compile(forward, mode=self.config.compile_mode, fullgraph=False)
                          if self.compile else forward)
        return self._step

    def _fits_cache(self, input_ids, sampling: Sampling) -> bool:
        return input_ids.shape[1] + sampling.max_new_tokens <= self.config.static_cache_tokens

    def _static_cache(self):
        """One cache for all requests: same tensors (addresses) every time, so CUDA graphs replay."""
        from transformers import StaticCache

        if self._cache is None:
            self._cache = StaticCache(config=self._base_model().config, max_cache_len=self.config.static_cache_tokens)
        else:
            self._cache.reset()
        return self._cache

    def _base_model(self):
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def _stream_fast(self, input_ids, sampling: Sampling, use_adapter: bool) -> Iterator[str]:
        for ids in self._fast_token_ids(input_ids, sampling, use_adapter):
            yield self.tokenizer.decode(ids, skip_special_tokens=True)

    def _fast_token_ids(self, input_ids, sampling: Sampling, use_adapter: bool,
                        stop_at_eos: bool = True) -> Iterator[list[int]]:
        """Static-cache decode loop; yields the generated ids after each token (EOS excluded).

        `stop_at_eos=False` decodes exactly `max_new_tokens` (benchmarks want a fixed length)."""
        torch = self._torch
        if not self._fits_cache(input_ids, sampling):
            raise ValueError(f"prompt ({input_ids.shape[1]} tokens) + {sampling.max_new_tokens} new tokens exceed "
                             f"the static cache ({self.config.static_cache_tokens}); raise static_cache_tokens")
        base = self._base_model()
        eos = set(eos_ids(self.model, self.tokenizer))
        cache = self._static_cache()
        warpers = _warpers(sampling)
        generated: list[int] = []
        # no_grad, as in `generate`: inference tensors in the reused cache would break later in-place updates.
        with torch.no_grad(), self._adapter_context(use_adapter):
            logits = base(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
            step = self._decode_step()
            for _ in range(sampling.max_new_tokens):
                token = _next_token(logits, warpers, input_ids)
                if stop_at_eos and token.item() in eos:
                    break
                generated.append(int(token.item()))
                yield generated
                if len(generated) == sampling.max_new_tokens:
                    break
                out = step(input_ids=token.view(1, 1), past_key_values=cache, use_cache=True)
                # CUDA graph outputs are overwritten by the next replay: copy the logits out.
                logits = out.logits[:, -1].clone()

    def greedy_ids(self, prompt_text: str, max_new_tokens: int, use_adapter: bool = True, fast: bool | None = None):
        """The generated token ids of one greedy answer (for the benchmark's output check)."""
        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=0.0)
        input_ids = self.encode(prompt_text)
        fast = self.fast if fast is None else fast
        with self._lock:
            if fast and self._fits_cache(input_ids, sampling):
                ids: list[int] = []
                for ids in self._fast_token_ids(input_ids, sampling, use_adapter):
                    pass
                return list(ids)
            with self._torch.inference_mode(), self._adapter_context(use_adapter):
                out = self.model.generate(input_ids=input_ids, attention_mask=self._torch.ones_like(input_ids),
                                          max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                          top_p=None, top_k=None, pad_token_id=self.tokenizer.pad_token_id)
            ids = out[0, input_ids.shape[1]:].tolist()
            eos = set(eos_ids(self.model, self.tokenizer))
            return [t for t in ids if t not in eos and t != self.tokenizer.pad_token_id]


def token_streamer(tokenizer, timeout: float = 600):
    """A `TextIteratorStreamer` that hands out every token, not every word.

    The stock streamer holds text back until a space arrives; here only a token that ends inside a
    multi-byte character (decoded as U+FFFD) waits for the next one.
    """
    from transformers import TextIteratorStreamer

    class TokenStreamer(TextIteratorStreamer):
        def put(self, value):
            if len(value.shape) > 1:
                value = value[0]
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            self.token_cache.extend(value.tolist())
            text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
            if text.endswith("\ufffd"):
                return
            self.on_finalized_text(text[self.print_len:])
            self.print_len = len(text)

    return TokenStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout)


def _warpers(sampling: Sampling):
    if sampling.greedy:
        return None
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    return LogitsProcessorList([TemperatureLogitsWarper(sampling.temperature), TopPLogitsWarper(sampling.top_p)])


def _next_token(logits, warpers, input_ids):
    import torch

    if warpers is None:
        return logits.argmax(dim=-1)
    scores = warpers(input_ids, logits.float())
    return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).view(-1)
