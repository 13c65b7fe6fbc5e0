"""Builders shared by the training tests: a tiny random Llama with a ChatML byte-level BPE tokenizer, and a
tiny spaces-rag-de dataset made with the prompt contract. Nothing is downloaded; each builds in seconds.

(The module holds no tests itself; the test_train_*.py modules import it.)
"""

from __future__ import annotations

from pathlib import Path

from dataset_builder.contract import REFUSAL, SYSTEM_PROMPT, Chunk, chat_messages, format_answer

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

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


def conf_for(model, data, out, **training):
    """`tiny_config` validated into a `TrainConfig` (what the training code receives)."""
    from rag_de import config as cfg
    from training_space.config import TrainConfig

    return cfg.from_dict(TrainConfig, tiny_config(str(model), str(data), out, **training))
