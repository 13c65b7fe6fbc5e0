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

from typing import Sequence

from answering.decision import evidence_gains

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
