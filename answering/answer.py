"""The answer once the decision is made: the answer modes (`ANSWER_MODES`) and the sentence chooser.

* `extracted`: the cited chunk's sentence that shares the most question words, in the dataset's answer form
  (`choose_answer`); what the decided pipeline gave before the model wrote its own answers.
* `generated`: the decision's lead is forced (`Laut Abschnitt [k] (Titel):`) and the model writes the rest
  (constrained decoding after the decision).
* `free`: the model's own generation from the prompt, decisions included (no decision layer).

Which mode a run ships is measured on the validation split (`rag-de train`) and stored in the adapter's
decision file, so the demo answers the way that scored best.
"""

from __future__ import annotations

from typing import Callable, Sequence

from answering.decision import ANSWER_MODES, DEFAULT_ANSWER_MODE, evidence_gains  # noqa: F401 (re-exported)
from dataset_builder.contract import format_answer


def forced_lead(number: int, chunk) -> str:
    """The lead a decided answer citing chunk `number` starts with: the dataset's answer form up to the colon,
    `Laut Abschnitt [k] (Titel):` (`contract.format_answer`; no title part for a chunk without one). The model
    continues from it with the token after the colon (` Das …`), as in its training rows."""
    return format_answer("", number, chunk.title or None).rstrip()


def extracted_answer(load_model: Callable, tokenizer, question: str, chunks: Sequence, number: int) -> str | None:
    """`extracted` mode: the cited chunk's sentence sharing the most question words, in the dataset's answer
    form (`choose_answer`; the model, `load_model()`, only breaks ties); None for a chunk without sentences."""
    from dataset_builder.writers.extractive import answer_candidates

    candidates, sentences = answer_candidates(question, list(chunks), number)
    if not candidates:
        return None
    return choose_answer(load_model, tokenizer, question, chunks[number - 1], candidates, sentences)


def generated_answers(model, tokenizer, prompts: Sequence[str], leads: Sequence[str], max_new_tokens: int,
                      batch_size: int = 8, progress: str | None = None) -> list[str]:
    """`generated` mode: each prompt with its forced lead, the model's greedy continuation after it (batched,
    shortest first so a batch pads little); returns lead + continuation, in input order. An empty lead is
    free generation."""
    from tqdm.auto import tqdm

    from answering.generate import generate_batch

    bar = tqdm(total=len(prompts), desc=progress or "answers", unit="ex", disable=progress is None)
    out = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(leads[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        texts = generate_batch(model, tokenizer, [prompts[i] + leads[i] for i in batch], max_new_tokens)
        for i, text in zip(batch, texts):
            out[i] = f"{leads[i]} {text}".strip()
        bar.update(len(batch))
    bar.close()
    return out

def word_overlap(question: str, sentences: Sequence[str]) -> list[int]:
    """Distinct (stemmed, stopword-free) question words in each sentence (the BM25 rule uses it too)."""
    from dataset_builder.retrieval import tokenize_de

    words = set(tokenize_de(question)[0])
    return [len(words & set(t)) for t in tokenize_de(list(sentences))]


def choose_answer(load_model, tokenizer, question: str, chunk, candidates: Sequence[str],
                  sentences: Sequence[str]) -> str:
    """The answer the decided pipeline gives once it cites `chunk` (`rag-de evaluate` and the demo alike): of
    the candidates (`dataset_builder.writers.extractive.answer_candidates`, one per sentence of the chunk),
    the one whose sentence shares the most question words (the BM25 rule's word overlap); ties broken by the
    model (`load_model()`, called only then): the evidence reading at sentence level,
    log P(question | the sentence, with its chunk's title and metadata) - log P(question | nothing).

    Measured on the sample data's gold chunks (answered correctness, validation / test): the model's
    sentence evidence alone 0.80 / 0.89, overlap 0.84 / 1.00, overlap with the model on ties 0.84 / 0.95
    (chosen on validation: as good as overlap, and the model is asked where the words cannot tell); the
    adapter's own likelihood of each answer preferred generic sentences.
    """
    from dataclasses import replace

    overlap = word_overlap(question, sentences)
    tied = [i for i, o in enumerate(overlap) if o == max(overlap)]
    if len(tied) == 1:
        return candidates[tied[0]]
    gains = evidence_gains(load_model(), tokenizer, question, [[replace(chunk, text=sentences[i])] for i in tied])
    return candidates[tied[max(range(len(tied)), key=gains.__getitem__)]]
