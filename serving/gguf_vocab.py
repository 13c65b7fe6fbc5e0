"""The tokenizer as GGUF metadata, the way llama.cpp's convert_hf_to_gguf.py writes it.

Byte-level BPE (SmolLM2, Llama 3) is written as `tokenizer.ggml.model = gpt2` with its merges; a
sentencepiece-style BPE (Llama 2, Mistral: `▁` word marks, `<0xNN>` byte fallback) as `llama` with scores.
Special token ids, merges and the chat template come from the saved tokenizer files through the `gguf`
package's own `SpecialVocab`. BOS/EOS are never added by llama.cpp (`add_bos_token = false`): the chat
template already writes what the model saw in training, and the project tokenizes the rendered template with
`add_special_tokens=False`, so the exported model gets the same token ids.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from serving.config import ExportError

# tokenizer.json pre-tokenizers -> llama.cpp's `tokenizer.ggml.pre` names (src/llama-vocab.cpp).
LLAMA3_SPLIT_START = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass
class GGUFVocab:
    model: str                  # "gpt2" (byte-level BPE) or "llama" (sentencepiece-style BPE)
    pre: str | None             # llama.cpp pre-tokenizer name (byte-level BPE only)
    tokens: list[str]
    token_types: list[int]
    scores: list[float] | None
    add_space_prefix: bool      # sentencepiece-style: a "▁" is put before the text (Llama 2, Mistral)
    special_vocab: object       # gguf.SpecialVocab: merges, special ids, chat template


def _pre_tokenizer_name(spec: dict | None) -> str:
    """Which llama.cpp regex splits text like this tokenizer.json does."""
    if not spec:
        return "default"
    kinds = [p.get("type") for p in spec.get("pretokenizers", [spec])]
    if kinds == ["ByteLevel"] and spec.get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and spec["pretokenizers"][0].get("individual_digits"):
        return "smollm"
    if kinds and kinds[0] == "Split":
        pattern = json.dumps(spec["pretokenizers"][0].get("pattern", {}))
        if LLAMA3_SPLIT_START.replace("\\", "\\\\") in pattern:
            return "llama-bpe"
    raise ExportError(
        f"the tokenizer's pre-tokenizer {kinds} has no llama.cpp equivalent known to the GGUF writer, "
        "tokenizer.json of the base, export with `rag-de export merged` and convert with llama.cpp's "
        "convert_hf_to_gguf.py")


def _kind(tokenizer_json: dict) -> str:
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE":
        raise ExportError(f"tokenizer model {model.get('type')!r} is not BPE, tokenizer.json of the base, "
                          "the GGUF writer handles byte-level BPE and sentencepiece-style BPE only; use "
                          "`rag-de export merged`")
    # ensure_ascii=False: json.dumps writes "▁" as "\\u2581" by default, and the check would never match
    if model.get("byte_fallback") or "▁" in json.dumps(tokenizer_json.get("decoder") or {}, ensure_ascii=False):
        return "llama"
    return "gpt2"


def _adds_space_prefix(tokenizer_json: dict) -> bool:
    spec = json.dumps([tokenizer_json.get("normalizer"), tokenizer_json.get("pre_tokenizer")])
    return '"Prepend"' in spec or re.search(r'"prepend_scheme": "(first|always)"', spec) is not None


def build_vocab(tokenizer, vocab_size: int) -> GGUFVocab:
    """Token list of exactly `vocab_size` entries (the embedding rows), types, merges and specials."""
    import gguf

    with tempfile.TemporaryDirectory(prefix="rag-de-gguf-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        tokenizer_json = json.loads((Path(tmp) / "tokenizer.json").read_text(encoding="utf-8"))
        special_vocab = gguf.SpecialVocab(tmp, load_merges=True, n_vocab=vocab_size)
    kind = _kind(tokenizer_json)
    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types, scores = [], [], []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        elif kind == "llama" and BYTE_TOKEN.match(token):
            tokens.append(token)
            types.append(gguf.TokenType.BYTE)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
        # sentencepiece-style BPE: a piece's score orders the merges (earlier id = earlier merge).
        scores.append(-1000.0 if i in added or token is None else -float(i))
    if len(tokenizer) > vocab_size:
        raise ExportError(f"the tokenizer has {len(tokenizer)} tokens but the model only {vocab_size} embedding "
                          "rows, the adapter's tokenizer, resize the embeddings before training")
    pre = _pre_tokenizer_name(tokenizer_json.get("pre_tokenizer")) if kind == "gpt2" else None
    # EOS = the token generation stops on in the project (the chat template's end of turn).
    special_vocab.special_token_ids["eos"] = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None:
        special_vocab.special_token_ids["pad"] = tokenizer.pad_token_id
    special_vocab.add_special_token.update({"bos": False, "eos": False})
    special_vocab.chat_template = getattr(tokenizer, "chat_template", None) or special_vocab.chat_template
    return GGUFVocab(model=kind, pre=pre, tokens=tokens, token_types=[int(t) for t in types],
                     scores=scores if kind == "llama" else None,
                     add_space_prefix=kind == "llama" and _adds_space_prefix(tokenizer_json), special_vocab=special_vocab)


def add_vocab(writer, vocab: GGUFVocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
        writer.add_add_space_prefix(vocab.add_space_prefix)
    vocab.special_vocab.add_to_gguf(writer, quiet=True)
