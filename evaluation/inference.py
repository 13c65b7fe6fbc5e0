"""Teacher-forced answer loss for one model (base or base + adapter); generation is `answering.generate`."""

from __future__ import annotations

from typing import Sequence


def answer_nll(model, tokenizer, prompts: Sequence[str], answers: Sequence[str]) -> list[tuple[float, int]]:
    """(summed NLL, token count) of each gold answer + EOS given its prompt, teacher-forced.

    Rows are left-padded with explicit position ids, so the answer tokens end every row and only the last
    `max answer length + 1` positions need logits (a full-vocabulary logit tensor over long RAG prompts
    would cost gigabytes).
    """
    import torch
    import torch.nn.functional as F

    eos = tokenizer.eos_token_id
    rows = []
    for prompt, answer in zip(prompts, answers):
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [eos]
        rows.append((p_ids, a_ids))
    length = max(len(p) + len(a) for p, a in rows)
    keep = max(len(a) for _, a in rows) + 1
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for i, (p_ids, a_ids) in enumerate(rows):
        seq = p_ids + a_ids
        input_ids[i, length - len(seq):] = torch.tensor(seq)
        attention[i, length - len(seq):] = 1
        labels[i, length - len(a_ids):] = torch.tensor(a_ids)
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    device = model.device
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                       position_ids=position_ids.to(device), logits_to_keep=keep).logits
    logits = logits[:, -keep:-1].float()   # position t predicts token t + 1
    target = labels[:, length - keep + 1:].to(logits.device)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
                          reduction="none").view(target.shape)
    mask = target != -100
    return [(float(nll[i][mask[i]].sum()), int(mask[i].sum())) for i in range(len(rows))]
