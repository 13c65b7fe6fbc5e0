"""The dataset side of training: load the RAG dataset, check it, and turn it into TRL prompt-completion rows.

Each row's `messages` (system + user with numbered chunks + assistant answer, built by
`contract.chat_messages`) is split by `contract.split_messages` into `prompt` (system + user) and
`completion` (the assistant turn). TRL's SFTTrainer renders both with the tokenizer's chat template
(the prompt with the generation prompt, exactly `contract.render_prompt_text`, what evaluation and the
demo send) and masks the prompt, so the loss covers the answer tokens and the end-of-turn token only.
All checks here run before the model is loaded.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dataset_builder.contract import split_messages
from dataset_builder.schema import VARIANT_SEP, question_key
from rag_de.config import ConfigError
from rag_de.data_files import check_columns as require_columns
from rag_de.data_files import data_files, require_split_files

REQUIRED_COLUMNS = ("messages",)


def sample_dataset_dir() -> Path:
    """The sample dataset that `rag-de train` without --dataset uses, built once per builder version.

    The folder name is a hash of the builder's code, sample data and CPU build config, so a changed prompt
    contract or sample file never trains on a stale cached build.
    """
    import hashlib

    import dataset_builder
    from rag_de.base_model import cache_root

    root = Path(dataset_builder.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return cache_root() / "sample-dataset" / digest.hexdigest()[:12]


def ensure_sample_dataset() -> Path:
    """Build the sample dataset (CPU-sized rows, as the CPU preset expects) the first time it is needed."""
    from dataset_builder.build_config import CPU_BUILD_CONFIG

    out = sample_dataset_dir()
    if not any(out.glob("**/train*.parquet")):
        print(f"[data] no --dataset given: building the sample dataset into {out} (rag-de build) ...", flush=True)
        cmd = [sys.executable, "-m", "rag_de", "build", "--config", str(CPU_BUILD_CONFIG), "--out", str(out)]
        if subprocess.run(cmd).returncode != 0:
            raise ConfigError(f"building the sample dataset failed ({' '.join(cmd)}); pass --dataset "
                              "org/NAME or a folder of parquet files instead")
    return out


def load_splits(dataset: str, revision: str | None = None):
    """A DatasetDict from a local folder of parquet files or a Hub dataset id; plus its revision (commit sha)."""
    from datasets import load_dataset

    path = Path(dataset)
    if path.exists():
        require_split_files(path, "train", ConfigError)
        return load_dataset("parquet", data_files=data_files(path)), None
    if dataset.count("/") != 1:
        raise ConfigError(f"data.dataset={dataset!r} is neither an existing folder nor a Hub id org/NAME")
    from huggingface_hub import HfApi

    sha = HfApi().dataset_info(dataset, revision=revision).sha
    return load_dataset(dataset, revision=sha or revision), sha


def check_columns(ds, where: str) -> None:
    """A dataset without `messages` (or with malformed conversations) fails here, naming the fix."""
    require_columns(ds.column_names, REQUIRED_COLUMNS, where, "the trainer (contract.chat_messages turns)",
                    ConfigError)
    if len(ds) == 0:
        raise ConfigError(f"{where}: the split is empty")
    for i, row in enumerate(ds.select(range(min(len(ds), 50)))):
        messages = row["messages"]
        try:
            split_messages(messages)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{where}: record {i} (id={row.get('id', '?')}): {exc}; each `messages` must be "
                              "system, user, assistant turns with role/content") from None
        if any(not m.get("content") for m in messages):
            raise ConfigError(f"{where}: record {i} (id={row.get('id', '?')}) has an empty turn")


def has_variants(ds) -> bool:
    """Whether the split holds counterfactual rows (`rag-de build --counterfactuals`)."""
    return "id" in ds.column_names and any(VARIANT_SEP in i for i in ds["id"])


def shuffle_rows(ds, config):
    """The train rows shuffled by `shuffle_seed`; a question's counterfactual rows as one adjacent group
    when `keep_variants_together` (the trainer then samples in order: `sequential_sampling`)."""
    if not (config.keep_variants_together and has_variants(ds)):
        return ds.shuffle(seed=config.shuffle_seed)
    import random

    groups: dict[str, list[int]] = {}
    for i, row_id in enumerate(ds["id"]):
        groups.setdefault(question_key(row_id), []).append(i)
    order = list(groups.values())
    random.Random(config.shuffle_seed).shuffle(order)
    return ds.select([i for group in order for i in group])


def to_prompt_completion(ds):
    """messages -> {prompt: [system, user], completion: [assistant]} (TRL's conversational prompt-completion)."""

    def split(row):
        prompt, completion = split_messages(row["messages"])
        return {"prompt": prompt, "completion": completion}

    return ds.map(split, remove_columns=ds.column_names, desc="messages -> prompt/completion")


def check_tokenizer(tokenizer, name: str) -> None:
    """No chat template or pad == EOS would silently train a model that formats wrongly or never stops."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"model.name={name!r}: its tokenizer has no chat template, so the prompt cannot be rendered the way "
            "evaluation and the demo render it. Use an instruct/chat model, or a tokenizer folder with a "
            "chat_template set.")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ConfigError(f"model.name={name!r}: pad token equals EOS; the EOS label would be masked and the "
                          "model would never learn to stop (load the tokenizer with rag_de.modeling.load_tokenizer)")


def end_of_turn_token(tokenizer) -> str:
    """The token the chat template closes the assistant turn with (`<|im_end|>` for ChatML).

    TRL appends nothing to conversational rows: the template's end-of-turn is what the model must learn to
    emit, so it has to be the tokenizer's EOS (generation stops on it).
    """
    probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "ANSWER"}]
    text = tokenizer.apply_chat_template(probe, tokenize=False)
    tail = text[text.rindex("ANSWER") + len("ANSWER"):]
    for token in tokenizer.all_special_tokens:
        if token and tail.lstrip().startswith(token):
            return token
    return tokenizer.eos_token


def rendered_length(tokenizer, row) -> int:
    """Tokens of prompt (with generation prompt) + completion, as TRL will tokenize the row."""
    text = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def drop_too_long(rows, tokenizer, max_length: int, where: str):
    """Rows longer than max_length would lose the end of their answer and its EOS (TRL truncates the end),
    teaching the model not to stop; they are dropped, counted, and an error is raised when none fit."""
    lengths = [rendered_length(tokenizer, row) for row in rows]
    keep = [i for i, n in enumerate(lengths) if n <= max_length]
    if not keep:
        raise ConfigError(f"{where}: all {len(lengths)} rows are longer than data.max_length={max_length} "
                          f"(shortest {min(lengths)} tokens); raise data.max_length to at least {max(lengths)}")
    if len(keep) < len(lengths):
        print(f"[data] {where}: dropped {len(lengths) - len(keep)} of {len(lengths)} rows longer than "
              f"data.max_length={max_length} tokens (longest {max(lengths)})", flush=True)
    return rows.select(keep) if len(keep) < len(lengths) else rows


@dataclass
class Prepared:
    """The checked rows the trainer gets, and what the run records about them."""

    train: object
    evaluation: object | None
    revision: str | None          # the dataset's commit on the Hub (None for a local folder)
    dataset: str
    in_order: bool                # rows must be sampled in order (counterfactual groups kept adjacent)


def prepare(config, tokenizer, model_name: str) -> Prepared:
    """Train rows, eval rows or None, dataset revision and name, all checked; nothing heavy is loaded."""
    dataset = config.dataset or str(ensure_sample_dataset())
    splits, revision = load_splits(dataset, config.revision)
    check_tokenizer(tokenizer, model_name)
    if config.train_split not in splits:
        raise ConfigError(f"{dataset}: no split {config.train_split!r} (has {list(splits)})")
    train = splits[config.train_split]
    check_columns(train, f"{dataset} [{config.train_split}]")
    # a question's counterfactual rows kept adjacent: the trainer must then sample in order
    in_order = bool(config.keep_variants_together and has_variants(train))
    train = drop_too_long(to_prompt_completion(shuffle_rows(train, config)), tokenizer,
                          config.max_length, f"{dataset} [{config.train_split}]")
    if config.max_train_samples:
        train = train.select(range(min(config.max_train_samples, len(train))))
    evaluation = None
    if config.eval_split:
        if config.eval_split not in splits:
            raise ConfigError(f"{dataset}: no split {config.eval_split!r} for eval (has {list(splits)}); "
                              "set data.eval_split=null to train without eval")
        evaluation = splits[config.eval_split]
        check_columns(evaluation, f"{dataset} [{config.eval_split}]")
        evaluation = drop_too_long(to_prompt_completion(evaluation), tokenizer, config.max_length,
                                   f"{dataset} [{config.eval_split}]")
        if config.max_eval_samples:
            evaluation = evaluation.select(range(min(config.max_eval_samples, len(evaluation))))
    return Prepared(train, evaluation, revision, dataset, in_order)
