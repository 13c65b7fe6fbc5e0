"""The contract's two decisions, read from a model's own probabilities instead of its free text.

An answer in the contract makes two decisions before it writes anything else (see `contract`):

* answer or refuse: the first word, `Laut` (the answer lead) or `Leider` (the refusal);
* which chunk: the number after `Laut Abschnitt [`.

A small model's free generation picks both greedily and often wrongly although its probabilities
separate the cases (an AUC above chance can still give a bad argmax when the classes are unbalanced).
So evaluation and the demo can *decide*: refuse when log P(refusal) - log P(answer) at the first
differing token is above a threshold tuned on the validation split (stored with the adapter in
`DECISION_FILE`), and cite the chunk number with the highest probability among the chunks that exist in
the prompt (a model can never cite `[5]` of two chunks). The answer then continues from the forced lead.

Two ways to read them (`DECISION_MODES`), both from the model's own probabilities:

* `lead`: one forward pass over `prompt + lead`: the logits at the end of the prompt (after any tokens
  the lead and the refusal share) and at the end of the lead (the citation number). This is what free
  generation decides with; a small model fine-tuned on a few dozen rows learns the format there but not
  the grounding (it stays near chance, see the README's grounding table).
* `evidence`: how much each chunk raises the likelihood of the question, log P(question | chunk n) -
  log P(question | no chunk), one short forward pass per chunk. The model cites the chunk that explains
  the question best and refuses when no chunk explains it. This reads the same model's context
  understanding where it is already strong (query likelihood, as in UPR, Sachan et al. 2022), without
  teaching it a new output habit; measured on the sample data it cites as well as BM25 before training.
  Its refusal score is the best chunk's PMI *per question token*: the summed PMI grows with the question's
  length, so a threshold tuned on short module questions refused most of XQuAD's longer ones.
* `fused`: the evidence reading's citation; its refusal score averages the evidence refusal score with
  the lexical one (minus the top chunk's BM25 score), each standardized on the tuning split (`Fusion`).
  The two fail on different questions (the model on paraphrases it cannot explain, BM25 on distractors
  that share the question's words). Refusal AUC of the 20-step adapter on the sample data's validation / test
  split: fused 0.834 / 0.912, evidence 0.778 / 0.912, BM25 0.852 / 0.827; on XQuAD-de test fused 0.877,
  evidence 0.777, BM25 0.892 (the 10-step preset's: 0.803 / 0.895 and 0.860; README, "Grounding").

Once it answers, the answer modes in `answering.answer` write the answer (the cited chunk's sentence, or the
model's own text after the forced lead).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from dataset_builder.contract import ANSWER_LEAD, REFUSAL

DECISION_FILE = "rag_de_decision.json"   # beside adapter_config.json, pushed with the adapter
DECISION_MODES = ("lead", "evidence", "fused")
LEAD_OPEN = ANSWER_LEAD + " ["           # what the model is given before it writes the chunk number
FUSION_MODEL_WEIGHT = 0.5   # `fused`: equal weights, not tuned (38 validation rows cannot pick a second parameter)
EVIDENCE_SCALE = "per_question_token"   # what `decide_by_evidence`'s refusal score is measured in
# How the answer is written once decided (`answering.answer`); stored in the decision file beside the reading.
ANSWER_MODES = ("generated", "extracted", "free")
DEFAULT_ANSWER_MODE = "extracted"   # what a decision file without `answer_mode` did (before the modes existed)
MODEL_READING = {"lead": "lead", "evidence": "evidence", "fused": "evidence"}   # mode -> what the model computes
# The evidence reading's batches (`question_logprobs`): about 8 of the quickstart's ~300-token passes, sorted by
# length so a batch pads little. Every forward call has a fixed cost (in NF4 on CPU it dequantizes all weights
# first), which a batch pays once: 1.12x on the quickstart's validation passes in NF4, 1.08x dequantized
# (scripts/bench_evidence.py; a row's own 2-3 passes in one padded batch had measured 0.94x).
EVIDENCE_BATCH_TOKENS = 2400


@dataclass
class Decision:
    """One prompt's decisions: refusal score (higher = refuse), citation scores per chunk number."""

    refusal_score: float
    citation_scores: list[float]          # per chunk 1..k: lead = log P(its number), evidence = PMI with it

    @property
    def citation(self) -> int:
        """The most probable chunk number among those in the prompt (1-based)."""
        return max(range(len(self.citation_scores)), key=self.citation_scores.__getitem__) + 1

    def refuses(self, threshold: float) -> bool:
        return self.refusal_score >= threshold


@dataclass
class Fusion:
    """How the `fused` reading combines the evidence refusal score with minus the top BM25 score."""

    model_weight: float                    # weight of the standardized evidence score (1 - it: BM25's)
    mean: list[float]                      # [evidence score, minus BM25 top score] on the tuning split
    std: list[float]

    @classmethod
    def fit(cls, evidence_scores: Sequence[float], bm25_tops: Sequence[float], model_weight: float) -> "Fusion":
        import statistics

        columns = [list(evidence_scores), [-t for t in bm25_tops]]   # bm25_tops: `top_score` of each row
        return cls(model_weight, [statistics.fmean(c) for c in columns],
                   [statistics.pstdev(c) or 1.0 for c in columns])

    def score(self, evidence_score: float, bm25_top: float) -> float:
        z = [(v - m) / sd for v, m, sd in zip((evidence_score, -bm25_top), self.mean, self.std)]
        return self.model_weight * z[0] + (1 - self.model_weight) * z[1]

    def fuse(self, decision: "Decision", bm25_scores: Sequence[float]) -> "Decision":
        """The evidence decision with its refusal score fused; the citation stays the model's."""
        return Decision(self.score(decision.refusal_score, top_score(bm25_scores)), list(decision.citation_scores))


def top_score(scores: Sequence[float]) -> float:
    """A row's best BM25 score (0 for a prompt without chunks): what `Fusion` standardizes."""
    return max(scores) if len(scores) else 0.0


@dataclass
class DecisionThreshold:
    """What the adapter ships: the refusal threshold and where it was tuned (the model card shows it)."""

    refusal_threshold: float
    tuned_on: str                          # e.g. "org/spaces-rag-de@<sha> [validation], 38 rows"
    mode: str = "lead"                     # which reading (DECISION_MODES) the threshold belongs to
    objective: str = "f1_gr"               # what the threshold maximizes on that split
    objective_value: float | None = None
    refusal_auc: float | None = None       # on the tuning split
    citation_accuracy_multi: float | None = None
    fusion: Fusion | None = None           # `fused` mode only
    max_needless_refusal: float | None = None   # the tuner's limit on needless refusals on the tuning split
    evidence_scale: str | None = None      # evidence/fused: EVIDENCE_SCALE (earlier files summed over tokens)
    # How the answer is written once decided (`ANSWER_MODES`), chosen on the tuning split by
    # measured answer quality (`evaluation.answer_modes`); files from before the modes: the extracted sentence.
    answer_mode: str = DEFAULT_ANSWER_MODE
    answer_modes: dict | None = None       # each mode's figures on the tuning split, as chosen from

    def save(self, folder: str | Path) -> Path:
        from rag_de.atomic import write_json

        path = Path(folder) / DECISION_FILE
        write_json(path, asdict(self))
        return path

    @classmethod
    def from_dict(cls, data: Mapping) -> "DecisionThreshold":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if isinstance(known.get("fusion"), Mapping):
            known["fusion"] = Fusion(**known["fusion"])
        if known.get("mode", "lead") not in DECISION_MODES:
            raise ValueError(f"{DECISION_FILE}: unknown decision mode {known['mode']!r}; expected one of "
                             f"{list(DECISION_MODES)}")
        if known.get("answer_mode", DEFAULT_ANSWER_MODE) not in ANSWER_MODES:
            raise ValueError(f"{DECISION_FILE}: unknown answer mode {known['answer_mode']!r}; expected one of "
                             f"{list(ANSWER_MODES)}")
        if known.get("mode") == "fused" and known.get("fusion") is None:
            raise ValueError(f"{DECISION_FILE}: mode 'fused' needs its 'fusion' (model_weight, mean, std)")
        if MODEL_READING[known.get("mode", "lead")] == "evidence" and known.get("evidence_scale") != EVIDENCE_SCALE:
            raise ValueError(f"{DECISION_FILE}: its {known['mode']} threshold was tuned on another evidence scale "
                             f"({known.get('evidence_scale') or 'summed over the question'}, now {EVIDENCE_SCALE}); "
                             "re-tune it: rag-de train ... --resume, or evaluate with --threshold validation")
        return cls(**known)


def load_threshold(adapter: str, revision: str | None = None) -> DecisionThreshold | None:
    """The adapter's tuned threshold (a local folder or a Hub repo), or None when it ships none."""
    folder = Path(adapter)
    if folder.is_dir():
        path = folder / DECISION_FILE
        return DecisionThreshold.from_dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = hf_hub_download(adapter, DECISION_FILE, revision=revision)
    except EntryNotFoundError:
        return None
    return DecisionThreshold.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class DecisionTokens:
    """Token ids of the decision points for one tokenizer (computed once)."""

    shared: tuple[int, ...]       # tokens the answer lead and the refusal start with alike (usually none)
    answer_id: int                # first token where the answer lead differs from the refusal
    refusal_id: int
    lead: tuple[int, ...]         # the whole `LEAD_OPEN` after the prompt
    numbers: tuple[int, ...]      # first token of "1".."9" after the lead (index 0 = chunk 1)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "DecisionTokens":
        lead = _continuation_ids(tokenizer, LEAD_OPEN)
        refusal = _continuation_ids(tokenizer, REFUSAL)
        n = 0
        while n < min(len(lead), len(refusal)) and lead[n] == refusal[n]:
            n += 1
        if n == min(len(lead), len(refusal)):
            raise ValueError(f"the tokenizer of {getattr(tokenizer, 'name_or_path', '?')} cannot tell the answer "
                             f"lead {LEAD_OPEN!r} from the refusal at any token")
        numbers = []
        for number in range(1, 10):
            ids = _continuation_ids(tokenizer, f"{LEAD_OPEN}{number}]")
            if ids[:len(lead)] != lead:
                raise ValueError(f"the tokenizer of {getattr(tokenizer, 'name_or_path', '?')} merges the chunk "
                                 f"number into the lead ({LEAD_OPEN!r}{number}), so the number cannot be read off")
            numbers.append(ids[len(lead)])
        if len(set(numbers)) != len(numbers):
            raise ValueError("the tokenizer does not give chunk numbers 1..9 distinct first tokens after the lead")
        return cls(tuple(lead[:n]), lead[n], refusal[n], tuple(lead), tuple(numbers))


def _continuation_ids(tokenizer, text: str) -> list[int]:
    """Tokens of `text` as the assistant's first words (after the chat template's generation prompt)."""
    probe = [{"role": "user", "content": "x"}]
    prompt = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    base = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full = tokenizer(prompt + text, add_special_tokens=False)["input_ids"]
    if full[:len(base)] != base:   # the boundary merged: fall back to the text alone
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return full[len(base):]


def decide(model, tokenizer, prompts: Sequence[str], chunk_counts: Sequence[int],
           tokens: DecisionTokens | None = None) -> list[Decision]:
    """Both decisions for each prompt (`render_prompt_text` output; k chunks each), one forward pass each.

    Prompts with more than 9 chunks are scored on their first 9 numbers (the builder's k is at most 4 by
    default, the demo's top_k at most 8).
    """
    import torch

    tokens = tokens or DecisionTokens.from_tokenizer(tokenizer)
    device = next(model.parameters()).device
    out: list[Decision] = []
    with torch.no_grad():
        for prompt, k in zip(prompts, chunk_counts):
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            keep = len(tokens.lead) + 1
            logits = model(input_ids=torch.tensor([ids + list(tokens.lead)], device=device),
                           logits_to_keep=keep).logits[0].float()
            first = torch.log_softmax(logits[len(tokens.shared)], dim=-1)
            refusal_score = float(first[tokens.refusal_id] - first[tokens.answer_id])
            number = torch.log_softmax(logits[-1], dim=-1)
            scores = [float(number[t]) for t in tokens.numbers[:max(1, min(k, 9))]]
            out.append(Decision(refusal_score, scores))
    return out


def _question_prefix(tokenizer, chunks) -> str:
    """The prompt text up to where the question starts (the question is the user turn's last text)."""
    from dataset_builder.contract import render_prompt_text

    marker = "\u2063QUESTION\u2063"
    text = render_prompt_text(tokenizer, marker, chunks)
    return text[:text.index(marker)]


def question_logprobs(model, tokenizer, requests: Sequence[tuple[str, Sequence]], progress: str | None = None,
                      batch_tokens: int = EVIDENCE_BATCH_TOKENS) -> list[float]:
    """log P(question tokens | the contract's prompt with `chunks`) for each (question, chunks) request,
    teacher-forced, summed over the question's tokens.

    Summed, not averaged: the difference of two sums is the pointwise mutual information of question and
    chunk (the evidence the chunk brings, in nats). Requests run in left-padded batches of similar length
    (sorted, so a batch pads little), up to `batch_tokens` tokens each; the results are in request order.
    """
    import torch
    from tqdm.auto import tqdm

    encoded = []
    for question, chunks in requests:
        prefix = tokenizer(_question_prefix(tokenizer, chunks), add_special_tokens=False)["input_ids"]
        target = tokenizer(question.strip(), add_special_tokens=False)["input_ids"]
        encoded.append((prefix + target, len(target)))
    batches: list[list[int]] = []
    for i in sorted(range(len(requests)), key=lambda i: len(encoded[i][0])):
        if batches and (len(batches[-1]) + 1) * len(encoded[i][0]) <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = [0.0] * len(requests)
    bar = tqdm(total=len(requests), desc=progress or "evidence", unit="q", disable=progress is None)
    with torch.no_grad():
        for batch in batches:
            width = max(len(encoded[i][0]) for i in batch)
            keep = max(encoded[i][1] for i in batch) + 1   # logits for the longest question, and the one before it
            ids = torch.tensor([[pad] * (width - len(encoded[i][0])) + encoded[i][0] for i in batch], device=device)
            mask = torch.tensor([[0] * (width - len(encoded[i][0])) + [1] * len(encoded[i][0]) for i in batch],
                                device=device)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                           logits_to_keep=keep).logits.float()
            for row, i in enumerate(batch):
                sequence, n = encoded[i]
                logp = torch.log_softmax(logits[row, keep - 1 - n: keep - 1], dim=-1)   # predicting the last n
                out[i] = float(logp[torch.arange(n, device=device), torch.tensor(sequence[-n:], device=device)].sum())
            bar.update(len(batch))
    bar.close()
    return out


def evidence_gains(model, tokenizer, question: str, chunk_sets: Sequence) -> list[float]:
    """PMI of the question with each chunk set: log P(q | chunks) - log P(q | no chunk)."""
    null, *with_chunks = question_logprobs(model, tokenizer, [(question, [])] + [(question, c) for c in chunk_sets])
    return [lp - null for lp in with_chunks]


def evidence_decisions(model, tokenizer, items: Sequence[tuple[str, Sequence]],
                       progress: str | None = None) -> list[Decision]:
    """`evidence` mode for each (question, chunks): citation scores = PMI of the question with each chunk
    (log P(q | chunk) - log P(q | no chunk), nats); refusal score = minus the best of them per question token
    (no chunk explains the question -> high). All items' passes go through one `question_logprobs` call, so
    they batch across items."""
    requests, spans = [], []
    for question, chunks in items:
        chunks = list(chunks)[:9]
        spans.append((len(requests), len(chunks)))
        requests += [(question, [])] + [(question, [c]) for c in chunks]
    logprobs = question_logprobs(model, tokenizer, requests, progress)
    out = []
    for (question, _), (start, k) in zip(items, spans):
        gains = [lp - logprobs[start] for lp in logprobs[start + 1:start + 1 + k]]
        length = max(1, len(tokenizer(question.strip(), add_special_tokens=False)["input_ids"]))
        out.append(Decision(refusal_score=-max(gains) / length, citation_scores=gains))
    return out


def decide_by_evidence(model, tokenizer, question: str, chunks) -> Decision:
    """`evidence_decisions` for one question (the demo's)."""
    return evidence_decisions(model, tokenizer, [(question, chunks)])[0]
