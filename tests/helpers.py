"""The test suite's shared helpers (no tests here): free ports, a local Hub process, tiny models and datasets.

Everything is built locally in seconds, nothing is downloaded: a 2-layer Llama with random weights and a
byte-level BPE tokenizer with a ChatML template (trained on the contract's German texts for the training
tests, on the sample module catalog for the demo tests), a LoRA adapter with non-zero weights (so the
adapter switch changes the output), tiny spaces-rag-de datasets made with the prompt contract.
Test modules import from here (`from helpers import ...`); conftest.py holds only fixtures and set-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from dataset_builder.contract import REFUSAL, SYSTEM_PROMPT, Chunk, chat_messages, format_answer
from rag_de.quickstart import free_port  # noqa: F401  (the project's one free-port helper, re-exported for tests)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
XQUAD_DE = SHARED_DATA / "xquad-de" / "xquad.de.part-a.json"
CATALOG = REPO_ROOT / "dataset_builder" / "sample_data" / "catalog"
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def start_hub(data_dir: Path, port: int, timeout: float = 60.0) -> subprocess.Popen:
    """Start `rag-de hub serve` as a subprocess and wait until it answers."""
    import urllib.request

    log = open(data_dir.parent / f"hub-{port}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_de", "hub", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"local hub exited with {proc.returncode}; see {log.name}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"local hub did not answer within {timeout}s; see {log.name}")


# ----- training: a tiny dataset in the spaces-rag-de schema and a tiny model folder

MODULES = [
    ("DS-101", "Einführung in Data Science", 5, "Die Prüfung ist eine Klausur von 90 Minuten."),
    ("DS-102", "Mathematische Grundlagen", 5, "Vor Semesterbeginn gibt es einen Vorkurs Mathematik."),
    ("DS-201", "Maschinelles Lernen", 10, "Das Modul umfasst ein Projekt in Gruppen von drei Personen."),
    ("DS-202", "Datenbanken", 5, "Die Übungen finden im Rechnerraum statt, Anwesenheit ist Pflicht."),
    ("DS-301", "Deep Learning", 10, "Voraussetzung ist das Modul Maschinelles Lernen."),
    ("DS-302", "Statistik", 5, "Die Note setzt sich aus Klausur und Hausarbeit zusammen."),
]
QUESTIONS = [
    ("Wie lange dauert die Klausur?", 0, "Die Prüfung ist eine Klausur von 90 Minuten."),
    ("Gibt es einen Vorkurs?", 1, "Vor Semesterbeginn gibt es einen Vorkurs Mathematik."),
    ("Wie groß sind die Projektgruppen?", 2, "Die Projektgruppen bestehen aus drei Personen."),
    ("Wo finden die Übungen statt?", 3, "Die Übungen finden im Rechnerraum statt."),
    ("Was ist die Voraussetzung?", 4, "Voraussetzung ist das Modul Maschinelles Lernen."),
    ("Wie setzt sich die Note zusammen?", 5, "Die Note setzt sich aus Klausur und Hausarbeit zusammen."),
    ("Wer ist die Dekanin?", None, None),
    ("Wann ist die Mensa geöffnet?", None, None),
]


def chunk(i: int) -> Chunk:
    code, name, ects, text = MODULES[i]
    return Chunk(id=f"{code}-0", text=text, title=f"{code} {name}", source=f"{code}.md",
                 metadata={"module_code": code, "ects": ects})


def rows(n: int, offset: int = 0) -> list[dict]:
    """n dataset rows in the spaces-rag-de schema, cycling through answerable and unanswerable questions."""
    out = []
    for k in range(n):
        question, gold, sentence = QUESTIONS[(k + offset) % len(QUESTIONS)]
        others = [i for i in range(len(MODULES)) if i != gold][(k % 3):(k % 3) + 2]
        picked = ([gold] if gold is not None else []) + others
        picked = picked[::-1] if k % 2 else picked
        chunks = [chunk(i) for i in picked]
        if gold is None:
            answer = REFUSAL
        else:
            answer = format_answer(sentence, picked.index(gold) + 1, chunks[picked.index(gold)].title)
        out.append({
            "id": f"ex-{offset + k}", "question": question, "contexts": [c.to_record() for c in chunks],
            "answer": answer, "gold_chunk_id": chunks[picked.index(gold)].id if gold is not None else None,
            "answerable": gold is not None, "gold_span": sentence or "", "origin": "test",
            "source_doc": f"doc-{k % 3}", "messages": chat_messages(question, chunks, answer),
        })
    return out


def write_dataset(folder: Path, n_train: int = 16, n_val: int = 4, drop: tuple[str, ...] = ()) -> Path:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", n_train, 0), ("validation", n_val, 3)):
        frame = pd.DataFrame(rows(n, offset)).drop(columns=list(drop))
        frame.to_parquet(folder / f"{split}.parquet")
    return folder


def build_tokenizer(chat_template: str | None = CHATML):
    """A byte-level BPE trained on the contract's German texts, with ChatML specials; EOS = <|im_end|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [SYSTEM_PROMPT, REFUSAL] + [m["content"] for r in rows(len(QUESTIONS)) for m in r["messages"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", bos_token=None,
                                   pad_token="<|endoftext|>", unk_token=None)
    if chat_template:
        fast.chat_template = chat_template
    return fast


def build_model_dir(folder: Path, chat_template: str | None = CHATML, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden 64) with random weights + tokenizer saved to `folder` (~1 MB)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(chat_template)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_config(model: str, dataset: str, out: Path, **training) -> dict:
    """TrainConfig overrides for a seconds-long CPU run of the tiny model."""
    return {
        "model": {"name": model, "dtype": "float32", "attn_implementation": "sdpa"},
        "data": {"dataset": dataset, "max_length": 1024},
        "quantization": {"kind": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "training": {"output_dir": str(out), "max_steps": 4, "per_device_train_batch_size": 2,
                     "per_device_eval_batch_size": 2, "learning_rate": 5e-3, "logging_steps": 1,
                     "eval_steps": 2, "save_steps": 2, "gradient_checkpointing": False, "bf16": False,
                     "warmup_steps": 0, "lr_scheduler_type": "constant", **training},
    }


def config_for(model, data, out, **training):
    """`tiny_config` validated into a `TrainConfig` (what the training code receives)."""
    from rag_de import config as config_lib
    from training_space.config import TrainConfig

    return config_lib.from_dict(TrainConfig, tiny_config(str(model), str(data), out, **training))


# ----- exports: a LoRA adapter on every linear layer, the contract's prompts, logits and greedy answers

NEW_TOKENS = 12


def save_lora(base_dir: Path, out: Path, base_id: str, targets="all-linear", seed: int = 1) -> Path:
    """A LoRA adapter with random non-zero A and B on every linear layer; its config names `base_id`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=targets,
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base_id
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out


def prompts(tokenizer, n: int = 4) -> list[str]:
    """The contract's prompts for the first rows of a test split (answerable and unanswerable)."""
    from dataset_builder.contract import contexts_from_column, render_prompt_text

    return [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in rows(n)]


def logits(model, tokenizer, texts):
    import torch

    with torch.inference_mode():
        return [model(**tokenizer(t, return_tensors="pt", add_special_tokens=False)).logits for t in texts]


def greedy(model, tokenizer, texts, new_tokens: int = NEW_TOKENS) -> list[list[int]]:
    """`new_tokens` greedy tokens per prompt (EOS not allowed to end it early), prompt tokenized as the project does."""
    import torch

    out = []
    for text in texts:
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, min_new_tokens=new_tokens,
                                 pad_token_id=tokenizer.pad_token_id)
        out.append(ids[0, enc["input_ids"].shape[1]:].tolist())
    return out


def load_gguf(path: Path):
    """Model (fp32) and tokenizer read back from a GGUF file by transformers' GGUF loader (`gguf_file=`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


# ----- demo: a tiny base + adapter + corpus dataset on the local Hub

def catalog_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(CATALOG.glob("*.md"))]


def build_catalog_tokenizer():
    """A byte-level BPE trained on the sample module catalog (the demo's corpus), ChatML, EOS = <|im_end|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    from dataset_builder.contract import SYSTEM_PROMPT

    tok.train_from_iterator(catalog_texts() + [SYSTEM_PROMPT], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHATML
    return fast


def build_tiny_model(tokenizer, seed: int = 0):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    # Keep the random model from stopping at once: its EOS logit is pushed down (generation stays real).
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id].zero_()
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    return model


def save_tiny_base(path: Path) -> Path:
    tokenizer = build_catalog_tokenizer()
    model = build_tiny_model(tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_adapter(base_dir: Path, path: Path, base_id: str) -> Path:
    """A LoRA adapter with random (non-zero) weights on q/v; its config names `base_id`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(path)
    config_path = path / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_id
    config_path.write_text(json.dumps(config, indent=2))
    return path


def catalog_chunks():
    """The sample catalog as contract chunks (front matter -> metadata), via the demo's upload reader."""
    from demo_space.documents import document_chunks

    chunks = []
    for path in sorted(CATALOG.glob("*.md")):
        chunks += document_chunks(path, max_tokens=120, max_bytes=10**7)
    return chunks


def corpus_rows(chunks) -> list[dict]:
    """Dataset-shaped rows whose `contexts` cover every chunk (three per row, overlapping)."""
    rows = []
    for i, chunk in enumerate(chunks):
        ctx = [chunks[(i + j) % len(chunks)].to_record() for j in range(3)]
        rows.append({"id": f"q{i}", "question": f"Frage zu {chunk.title}?", "contexts": ctx,
                     "answer": "", "answerable": True})
    return rows


def publish_tiny_stack(work: Path, prefix: str) -> dict:
    """Publish a tiny base, its adapter and a corpus dataset to the local Hub (HF_ENDPOINT); returns ids."""
    from datasets import Dataset, DatasetDict
    from huggingface_hub import HfApi

    api = HfApi()
    ids = {"base": f"org/{prefix}-base", "adapter": f"org/{prefix}-adapter", "dataset": f"org/{prefix}-data"}
    base_dir = save_tiny_base(work / "base")
    adapter_dir = save_tiny_adapter(base_dir, work / "adapter", ids["base"])
    for key, folder in (("base", base_dir), ("adapter", adapter_dir)):
        api.create_repo(ids[key], exist_ok=True)
        api.upload_folder(repo_id=ids[key], folder_path=str(folder), commit_message=f"tiny {key}")
    rows = corpus_rows(catalog_chunks())
    DatasetDict({"train": Dataset.from_list(rows[::2]), "test": Dataset.from_list(rows[1::2])}).push_to_hub(
        ids["dataset"])
    return ids


def tiny_demo_config(ids: dict, **overrides):
    from demo_space.settings import DemoConfig

    values = dict(base_model=ids["base"], adapter=ids["adapter"], dataset=ids["dataset"], max_new_tokens=12)
    values.update(overrides)
    return DemoConfig(**values)
