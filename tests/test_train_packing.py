"""Padding-free BFD packing is exact: a packed row computes what its examples compute one by one.

The packed loss TRL optimizes is token-weighted: sum of the per-token losses of all completion tokens in the
row / their count. The mathematically equal quantity from separate runs is therefore sum_i(loss_sum_i) /
sum_i(n_i), not the plain mean of per-example means (equal only when every example has as many answer
tokens). Both are computed below and the first must match to float32 precision.
"""

from __future__ import annotations

import pytest
import torch
from helpers import build_model_dir, tiny_config, write_dataset

from rag_de import config as config_lib
from rag_de.config import ConfigError
from training_space import train as train_mod
from training_space.config import TrainConfig


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("packing")
    model_dir, data_dir = build_model_dir(root / "model"), write_dataset(root / "data", n_train=8, n_val=2)
    overrides = tiny_config(str(model_dir), str(data_dir), root / "run", per_device_train_batch_size=1)
    overrides["data"].update(packing=True, max_length=2048)
    run = train_mod.build_trainer(config_lib.from_dict(TrainConfig, overrides))
    run.trainer.model.eval()
    batch = next(iter(run.trainer.get_train_dataloader()))
    return run, batch


def segments(batch):
    """(start, end) of each example in the packed row, from the position ids restarting at 0."""
    positions = batch["position_ids"][0]
    starts = (positions == 0).nonzero().flatten().tolist()
    ends = starts[1:] + [int(batch["input_ids"].shape[1])]
    return list(zip(starts, ends))


def test_packed_row_holds_several_examples_with_restarting_positions(packed_run):
    _, batch = packed_run
    assert batch["input_ids"].shape[0] == 1, "padding-free: the batch is one flat row"
    assert "attention_mask" not in batch, "no padding mask: the boundaries come from position_ids"
    spans = segments(batch)
    assert len(spans) >= 3
    for start, end in spans:
        assert batch["position_ids"][0, start:end].tolist() == list(range(end - start))
        assert batch["labels"][0, start] == -100, "no example predicts across the boundary into the next"


def test_packed_logits_equal_one_by_one_logits(packed_run):
    run, batch = packed_run
    model = run.trainer.model
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        for start, end in segments(batch):
            alone = model(input_ids=batch["input_ids"][:, start:end]).logits[0]
            torch.testing.assert_close(packed[start:end], alone, rtol=1e-5, atol=1e-5)


def test_attention_would_cross_boundaries_without_position_reset(packed_run):
    """The check above can fail: treating the row as one sequence changes every later example's logits."""
    run, batch = packed_run
    model = run.trainer.model
    start, end = segments(batch)[1]
    with torch.no_grad():
        one_sequence = model(input_ids=batch["input_ids"]).logits[0, start:end]
        alone = model(input_ids=batch["input_ids"][:, start:end]).logits[0]
    assert (one_sequence - alone).abs().max() > 1e-3


def test_packed_loss_equals_token_weighted_loss_of_separate_runs(packed_run):
    run, batch = packed_run
    trainer, model = run.trainer, run.trainer.model
    with torch.no_grad():
        packed_loss = trainer.compute_loss(model, dict(batch)).item()
        sums, counts, means = [], [], []
        for start, end in segments(batch):
            ids = batch["input_ids"][:, start:end]
            labels = batch["labels"][:, start:end].clone()
            logits = model(input_ids=ids).logits[0, :-1]
            target = labels[0, 1:]
            token_loss = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")
            n = int((target != -100).sum())
            sums.append(token_loss.item())
            counts.append(n)
            means.append(token_loss.item() / n)
    assert all(n > 0 for n in counts)
    token_weighted = sum(sums) / sum(counts)
    assert packed_loss == pytest.approx(token_weighted, rel=1e-5, abs=1e-6)
    # For the record: the per-example mean differs once answers have different lengths.
    if len(set(counts)) > 1:
        assert sum(means) / len(means) != pytest.approx(token_weighted, rel=1e-7)


def test_packing_with_custom_collator_is_a_config_error(tmp_path):
    overrides = tiny_config("unused", "unused", tmp_path / "run")
    overrides["data"].update(packing=True, collator="transformers:DataCollatorWithPadding")
    with pytest.raises(ConfigError, match="packing=true with a custom data.collator"):
        train_mod.build_trainer(config_lib.from_dict(TrainConfig, overrides))
