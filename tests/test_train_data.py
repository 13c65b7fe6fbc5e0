"""What the trainer feeds the model: labels on the answer + EOS only, prompt == inference prompt; bad input
fails before the model loads."""

from __future__ import annotations

import pytest
from helpers import build_model_dir, config_for, write_dataset

from dataset_builder.contract import contexts_from_column, render_prompt_text
from rag_de.config import ConfigError
from training_space import train as train_mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return build_model_dir(root / "model"), write_dataset(root / "data")


@pytest.fixture
def no_model_load(monkeypatch):
    """Any attempt to load the base model fails the test: checks must come first."""
    import rag_de.modeling

    def refuse(*args, **kwargs):
        raise AssertionError("the base model was loaded before the input was checked")

    monkeypatch.setattr(rag_de.modeling, "load_causal_lm", refuse)


def test_labels_cover_exactly_answer_and_eos_and_prompt_is_inference_prompt(tiny, tmp_path):
    import pandas as pd

    model_dir, data_dir = tiny
    run = train_mod.build_trainer(config_for(model_dir, data_dir, tmp_path / "run"))
    trainer, tokenizer = run.trainer, run.trainer.processing_class
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.eos_token == "<|im_end|>"

    # The trainer shuffles the rows; find the source row of the first prepared example by its answer.
    example = trainer.train_dataset[0]
    ids, labels = example["input_ids"], example["labels"]
    first = next(i for i, label in enumerate(labels) if label != -100)
    assert all(label == -100 for label in labels[:first])
    assert labels[first:] == ids[first:], "every token after the prompt is a training target"
    completion = tokenizer.decode(ids[first:])
    source = pd.read_parquet(data_dir / "train.parquet")
    row = next(r for _, r in source.iterrows() if completion == r["answer"] + "<|im_end|>\n"
               or completion == r["answer"] + "<|im_end|>")
    # Labels = the answer's tokens, then EOS (<|im_end|>), then at most the template's newline.
    answer_ids = tokenizer(row["answer"], add_special_tokens=False)["input_ids"]
    target = ids[first:]
    assert target[:len(answer_ids)] == answer_ids
    assert target[len(answer_ids)] == tokenizer.eos_token_id
    assert len(target) - len(answer_ids) - 1 <= 1
    # The prompt part is byte for byte what evaluation and the demo send at inference.
    prompt = tokenizer.decode(ids[:first])
    assert prompt == render_prompt_text(tokenizer, row["question"], contexts_from_column(row["contexts"]))


def test_dataset_without_messages_fails_before_model_load(tiny, tmp_path, no_model_load):
    model_dir, _ = tiny
    data = write_dataset(tmp_path / "nomsg", drop=("messages",))
    with pytest.raises(ConfigError, match=r"missing column\(s\) \['messages'\], in .*rag-de build"):
        train_mod.build_trainer(config_for(model_dir, data, tmp_path / "run"))


def test_tokenizer_without_chat_template_fails_before_model_load(tiny, tmp_path, no_model_load):
    _, data_dir = tiny
    model = build_model_dir(tmp_path / "plain", chat_template=None)
    with pytest.raises(ConfigError, match="has no chat template"):
        train_mod.build_trainer(config_for(model, data_dir, tmp_path / "run"))


def test_rows_longer_than_max_length_are_dropped_not_truncated(tiny, tmp_path, no_model_load):
    model_dir, data_dir = tiny
    config = config_for(model_dir, data_dir, tmp_path / "run")
    config.data.max_length = 20
    with pytest.raises(ConfigError, match="longer than data.max_length=20"):
        train_mod.build_trainer(config)


def test_missing_split_and_missing_train_file_are_named(tiny, tmp_path, no_model_load):
    model_dir, data_dir = tiny
    config = config_for(model_dir, data_dir, tmp_path / "run")
    config.data.eval_split = "dev"
    with pytest.raises(ConfigError, match="no split 'dev'.*eval_split=null"):
        train_mod.build_trainer(config)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no parquet file for split 'train', in .*rag-de build"):
        train_mod.build_trainer(config_for(model_dir, empty, tmp_path / "run"))
