"""`rag-de export gguf` with a sentencepiece-style tokenizer (Llama 2 / Mistral): `▁` word marks, `<0xNN>` byte
fallback, written as `tokenizer.ggml.model = llama` with scores (serving/gguf_vocab.py).

The tokenizer is built here with the `tokenizers` library the way Mistral's and transformers' own Llama
tokenizer.json are laid out: `<unk>` `<s>` `</s>`, then the 256 byte tokens in the BPE vocabulary (not added
tokens), then a few hundred merges learned on German sentences with umlauts and ß; `byte_fallback`, a
`Metaspace` pre-tokenizer (prepend_scheme "first", split false) and no normalizer; a Llama-2 chat template
(`<s>[INST] <<SYS>>...<</SYS>> ... [/INST] answer</s>`). A tiny random Llama over it gets a LoRA adapter on
the local Hub, both exports run through the real CLI, and the f32 GGUF is read back with transformers.

Shows: the GGUF says `llama` with scores, byte tokens typed BYTE, the specials CONTROL and `</s>` as EOS; the
tokenizer transformers rebuilds from it gives the original's ids on the contract's prompts and on text that
needs byte fallback; the GGUF model answers like the merged one.

Found on the way: `_kind` looked for `▁` in `json.dumps(decoder)`, which escapes it to `\\u2581`, so a `▁`
vocab without byte fallback was written as `gpt2`; fixed (ensure_ascii=False) and checked here.

Known limit of transformers' GGUF reader (5.x, integrations/gguf/gguf_tokenizer_mapping.py): a `llama` vocab
is always rebuilt as `LlamaTokenizer` (Metaspace, prepend_scheme "first"); `tokenizer.ggml.add_space_prefix`
is read but not passed on. So the older Llama-2 layout (a `Prepend("▁")` normalizer, which puts a `▁` in
front of the text after every special token, as llama.cpp does) reads back with other ids right after a
special token; `test_legacy_prepend_layout_is_a_reader_limit` pins that down. The converse is not checked
here (no llama.cpp in the test environment): llama.cpp adds that `▁` whenever add_space_prefix is set
(llama-vocab.cpp, `add_space_prefix && is_prev_special`), so for the Metaspace layout above its ids right
after a special token differ from transformers'.
"""

from __future__ import annotations

import json

import pytest
import torch

from dataset_builder.contract import REFUSAL, SYSTEM_PROMPT
from rag_de.cli import main
from helpers import build_tiny_model, greedy, load_gguf, logits, prompts, save_lora

SENTENCES = [
    "Die Prüfung im Modul Datenbanken ist eine Klausur von 90 Minuten.",
    "Für das Studium der Größen und Maße gibt es einen Vorkurs Mathematik.",
    "Übungen finden im Rechnerraum statt, die Anwesenheit ist Pflicht.",
    "Die Straße zur Universität ist im Winter oft glatt und weiß.",
    "Schöne Grüße aus Köln: Das Modul umfasst 5 ECTS und schließt mit einer Hausarbeit ab.",
    "Voraussetzung für Maschinelles Lernen ist das Modul Mathematische Grundlagen.",
    SYSTEM_PROMPT,
    REFUSAL,
]
SPECIALS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
# Llama-2's chat format, with the system prompt folded into the first user turn.
LLAMA2_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = '<<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' %}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + ns.system + message['content'] + ' [/INST]' }}"
    "{% set ns.system = '' %}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)
# Umlauts, ß, digits (some never seen in training), and characters outside the vocabulary (byte fallback).
ODD_TEXT = "Größe: 12,5 m² für die Straße – Übung 7 kostet 30 € ☃ (schön!)"


def build_spm_tokenizer(legacy_prepend: bool = False):
    """A sentencepiece-style BPE: specials, 256 byte tokens, then chars + merges learned on `SENTENCES`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer_tok.train_from_iterator(SENTENCES * 3, trainers.BpeTrainer(vocab_size=420, show_progress=False))
    learned = json.loads(trainer_tok.to_str())["model"]
    vocab = {token: i for i, token in enumerate(SPECIALS + BYTE_TOKENS)}
    for token, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    if legacy_prepend:   # the layout of Llama-2's original tokenizer.json
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
    else:                # Mistral's and transformers' LlamaTokenizer layout
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = LLAMA2_TEMPLATE
    return fast, len(merges)


def export_spm(tokenizer, work, prefix: str) -> dict:
    """Base (tiny random Llama over `tokenizer`) + LoRA adapter on the local Hub; merged and f32 GGUF exports."""
    from huggingface_hub import HfApi

    api = HfApi()
    ids = {"base": f"org/{prefix}-base", "adapter": f"org/{prefix}-adapter"}
    base_dir = work / "base"
    model = build_tiny_model(tokenizer)
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    adapter_dir = save_lora(base_dir, work / "adapter", ids["base"])
    for key, folder in (("base", base_dir), ("adapter", adapter_dir)):
        api.create_repo(ids[key], exist_ok=True)
        api.upload_folder(repo_id=ids[key], folder_path=str(folder), commit_message=f"tiny {key}")
    merged, gguf_file = work / "merged", work / "gguf" / f"{prefix}-f32.gguf"
    assert main(["export", "merged", "--adapter", ids["adapter"], "--out", str(merged)]) == 0
    assert main(["export", "gguf", "--adapter", ids["adapter"], "--out", str(gguf_file), "--dtype", "f32"]) == 0
    return {**ids, "merged": merged, "gguf": gguf_file}


@pytest.fixture(scope="module")
def spm(local_hub, tmp_path_factory):
    tokenizer, n_merges = build_spm_tokenizer()
    assert n_merges >= 200
    return export_spm(tokenizer, tmp_path_factory.mktemp("export-spm"), "export-spm")


@pytest.fixture(scope="module")
def merged_model(spm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(spm["merged"], dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(spm["merged"])


def test_tokenizer_is_sentencepiece_style(merged_model):
    """The fixture is what the test claims: `▁` marks, byte tokens in the BPE vocab, byte fallback in use."""
    _, tokenizer = merged_model
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    assert spec["model"]["byte_fallback"] and spec["pre_tokenizer"]["type"] == "Metaspace"
    assert all(tokenizer.convert_tokens_to_ids(b) == 3 + i for i, b in enumerate(BYTE_TOKENS))
    pieces = tokenizer.tokenize(ODD_TEXT)
    assert "▁Straße" in pieces and {"<0xE2>", "<0x82>", "<0xAC>"} <= set(pieces)   # € is not in the vocab
    assert tokenizer.decode(tokenizer(ODD_TEXT, add_special_tokens=False)["input_ids"]) == ODD_TEXT


def test_gguf_metadata_is_llama_vocab(spm, merged_model):
    from gguf import GGUFReader, TokenType

    _, tokenizer = merged_model
    reader = GGUFReader(spm["gguf"])
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert field("tokenizer.ggml.model") == "llama"
    assert "tokenizer.ggml.pre" not in reader.fields   # llama.cpp's SPM vocab has no pre-tokenizer regex
    tokens, types, scores = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type"), \
        field("tokenizer.ggml.scores")
    assert len(tokens) == len(types) == len(scores) == len(tokenizer) == field("llama.vocab_size")
    vocab = tokenizer.get_vocab()
    assert all(tokens[i] == t for t, i in vocab.items())
    assert {types[vocab[b]] for b in BYTE_TOKENS} == {TokenType.BYTE}
    assert {types[vocab[s]] for s in SPECIALS} == {TokenType.CONTROL}
    assert types[vocab["▁Straße"]] == TokenType.NORMAL
    # llama.cpp's SPM tokenizer merges the pair whose result scores highest: a merge's result must score
    # below its parts, and an earlier merge's result above a later one's
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    results = [vocab["".join(pair)] for pair in merges]
    assert all(scores[vocab[a]] > scores[r] < scores[vocab[b]] for (a, b), r in zip(merges, results))
    assert all(scores[x] > scores[y] for x, y in zip(results, results[1:]))
    assert field("tokenizer.ggml.add_space_prefix") is True
    assert tokens[field("tokenizer.ggml.eos_token_id")] == "</s>"
    assert tokens[field("tokenizer.ggml.bos_token_id")] == "<s>"
    assert tokens[field("tokenizer.ggml.unknown_token_id")] == "<unk>"
    assert tokens[field("tokenizer.ggml.padding_token_id")] == tokenizer.pad_token
    assert field("tokenizer.ggml.add_bos_token") is False and field("tokenizer.ggml.add_eos_token") is False
    assert field("tokenizer.chat_template") == LLAMA2_TEMPLATE
    assert len(field("tokenizer.ggml.merges")) >= 200


def test_gguf_tokenizer_gives_the_same_ids(spm, merged_model):
    _, tokenizer = merged_model
    _, gguf_tokenizer = load_gguf(spm["gguf"])
    assert gguf_tokenizer.chat_template == tokenizer.chat_template
    texts = prompts(tokenizer)
    assert prompts(gguf_tokenizer) == texts and texts[0].startswith("<s>[INST] <<SYS>>\n")
    for text in texts + [ODD_TEXT, "Übung: Größe ß ẞ 😀"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert gguf_tokenizer(text, add_special_tokens=False)["input_ids"] == ids, text
        assert gguf_tokenizer.decode(ids) == tokenizer.decode(ids)
    assert gguf_tokenizer.eos_token == "</s>" and gguf_tokenizer.bos_token == "<s>"


def test_gguf_answers_like_merged(spm, merged_model):
    reference, tokenizer = merged_model
    model, gguf_tokenizer = load_gguf(spm["gguf"])
    assert model.config.eos_token_id == tokenizer.eos_token_id
    texts = prompts(tokenizer)
    diff = max((a - b).abs().max().item() for a, b in zip(logits(reference, tokenizer, texts),
                                                          logits(model, gguf_tokenizer, texts)))
    assert diff <= 1e-5, diff
    assert greedy(model, gguf_tokenizer, texts, 6) == greedy(reference, tokenizer, texts, 6)


def test_sentencepiece_vocab_is_told_apart_without_byte_fallback(merged_model):
    """A `▁`-marked BPE is `llama` from its decoder alone (json.dumps used to escape the `▁` it looks for)."""
    from serving.gguf_vocab import _kind

    _, tokenizer = merged_model
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    assert _kind(spec) == "llama"
    spec["model"]["byte_fallback"] = False
    assert _kind(spec) == "llama"
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    assert _kind(spec) == "gpt2"


def test_legacy_prepend_layout_is_a_reader_limit(tmp_path):
    """Llama-2's original layout (`Prepend("▁")` normalizer) puts a `▁` after every special token; the GGUF
    says `add_space_prefix` as llama.cpp wants it, but transformers rebuilds a Metaspace("first") tokenizer,
    which does not. Text without special tokens reads back the same. If this starts failing, transformers
    reads the layout now: turn it into an equality check like `test_gguf_tokenizer_gives_the_same_ids`."""
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    from serving.gguf_export import write_gguf

    tokenizer, _ = build_spm_tokenizer(legacy_prepend=True)
    path = tmp_path / "legacy.gguf"
    write_gguf(build_tiny_model(tokenizer), tokenizer, path, "f32", "legacy", "legacy")
    assert GGUFReader(path).fields["tokenizer.ggml.add_space_prefix"].contents() is True
    gguf_tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    pieces = lambda tok, text: tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert pieces(gguf_tokenizer, ODD_TEXT) == pieces(tokenizer, ODD_TEXT)
    text = prompts(tokenizer, 1)[0]
    assert pieces(tokenizer, text)[:3] == ["<s>", "▁", "["]
    assert pieces(gguf_tokenizer, text)[:2] == ["<s>", "["]
