"""Builders shared by the demo tests: a tiny random chat model, its adapter, a tiny corpus dataset.

Everything is made here, locally, in seconds: a byte-level BPE tokenizer trained on the sample module
catalog with a ChatML template, a 2-layer Llama with random weights, a LoRA adapter with non-zero
weights (so the adapter switch changes the output). No downloads.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CATALOG = REPO_ROOT / "dataset_builder" / "sample_data" / "catalog"
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def catalog_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(CATALOG.glob("*.md"))]


def build_tokenizer():
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
    tokenizer = build_tokenizer()
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


def tiny_settings(ids: dict, **overrides):
    from demo_space.settings import DemoSettings

    values = dict(base_model=ids["base"], adapter=ids["adapter"], dataset=ids["dataset"], max_new_tokens=12)
    values.update(overrides)
    return DemoSettings(**values)
