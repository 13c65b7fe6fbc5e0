"""The training objective: SFT loss with the contract's decision tokens weighted up.

Why: an answer has ~40 target tokens, and two of them carry the whole decision the model must learn —
the first word (`Laut`: answer, `Leider`: refuse) and the chunk number after `Laut Abschnitt [`. With
plain SFT they are 2 of ~40 equal terms, and the rest (copying a sentence, the title, the refusal text)
is learnt within a few steps (token accuracy ~0.98) while the decisions stay at chance. Weighting those
positions `decision_token_weight` times makes a few hundred rows teach them.

The weights are read off the labels alone (the first completion token of each row, and the number
tokens after the tokenizer's `[` of the answer lead), so the data pipeline stays TRL's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from answering.decision import DecisionTokens


@dataclass(frozen=True)
class DecisionPositions:
    """Which label tokens are decisions: the lead's `[` token and the tokens a chunk number may use."""

    open_id: int
    number_ids: frozenset[int]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "DecisionPositions":
        tokens = DecisionTokens.from_tokenizer(tokenizer)
        digits = {tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
        digits.discard(getattr(tokenizer, "unk_token_id", None))
        return cls(open_id=tokens.lead[-1], number_ids=frozenset(digits | set(tokens.numbers)))


def decision_weights(labels, positions: DecisionPositions, weight: float):
    """Per-token loss weights for shifted `labels` (-100 = ignored): `weight` at decisions, 1 elsewhere."""
    import torch

    weights = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    valid = labels != -100
    has = valid.any(dim=1)
    first = valid.int().argmax(dim=1)                 # the first completion token of each row
    rows = torch.arange(labels.size(0), device=labels.device)
    weights[rows[has], first[has]] = weight
    # The chunk number: number tokens right after the first `[` of the completion.
    is_open = (labels == positions.open_id) & valid
    for row in torch.nonzero(is_open.any(dim=1)).flatten().tolist():
        j = int(is_open[row].int().argmax()) + 1
        while j < labels.size(1) and int(labels[row, j]) in positions.number_ids:
            weights[row, j] = weight
            j += 1
    return weights * valid


def weighted_trainer_class():
    """SFTTrainer whose loss weighs the decision tokens; built lazily so importing this needs no TRL."""
    import torch
    from trl import SFTTrainer

    class DecisionWeightedSFTTrainer(SFTTrainer):
        """SFTTrainer with `decision_weights` applied to the token losses (normalized like TRL's: by tokens)."""

        def __init__(self, *args, decision_weight: float, decision_positions: DecisionPositions, **kwargs):
            super().__init__(*args, **kwargs)
            self.decision_weight = decision_weight
            self.decision_positions = decision_positions

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.decision_weight == 1.0:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
            logits = outputs.logits[:, :-1].float()
            target = labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                    ignore_index=-100, reduction="none").view_as(target)
            weights = decision_weights(target, self.decision_positions, self.decision_weight)
            tokens = (target != -100).sum() if num_items_in_batch is None else num_items_in_batch
            loss = (nll * weights).sum() / torch.as_tensor(tokens, device=nll.device).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes   # as Trainer does: DDP averages the gradients
            return (loss, outputs) if return_outputs else loss

    return DecisionWeightedSFTTrainer
