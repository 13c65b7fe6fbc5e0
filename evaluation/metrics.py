"""Answer-quality metrics for a grounded, citing, refusing assistant: pure functions, no model.

Every prediction and gold answer is read with `contract.parse_answer` first, so lexical metrics compare
the answer text without `[n]` markers and source suffixes. Definitions (per example, then aggregated):

* `rouge_l`: ROUGE-L F1 (rouge-score, Unicode word tokens, no stemmer: Porter is English-only).
* `bleu`: sacreBLEU; aggregate = corpus BLEU over all examples, scaled to 0..1.
* `token_f1`: SQuAD-style bag-of-tokens F1 between prediction and gold answer text.
* `gold_span_recall` (answerable only): 1 if the normalized prediction contains the normalized gold span.
* `citation_accuracy` (answerable only): 1 if the prediction's FIRST citation is the gold chunk, else 0
  (a refusal, no citation, or a number outside the prompt's chunks count as 0).
* refusal (positive class = refusal, over all examples; unanswerable examples are the positives):
  `refusal_precision` = TP/(TP+FP), `refusal_recall` = TP/(TP+FN), `refusal_f1`; 0 when a denominator is
  0; None when the split has no unanswerable example. A refusal on an answerable example is a
  *needless refusal* (FP); a non-refusal on an unanswerable one is a *missed refusal* (FN).
* `faithfulness` (non-refusal predictions only): share of the answer's content words (lower-cased word
  tokens minus `GERMAN_STOPWORDS`) found in the cited chunks' rendered text (title, metadata, text); an
  answer that cites no valid chunk scores 0; None when the answer has no content word.
* `eval_loss` / `perplexity`: teacher-forced mean NLL over the gold answer tokens + EOS (computed in
  `evaluation.loss`); aggregate = token-weighted mean, perplexity = exp(mean NLL).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from dataset_builder.contract import Chunk, parse_answer, render_chunk

WORD_RE = re.compile(r"\w+", re.UNICODE)

# Function words that carry no content (articles, pronouns, auxiliaries, prepositions, conjunctions).
GERMAN_STOPWORDS = frozenset("""
aber alle allem allen aller alles als also am an ander andere anderem anderen anderer anderes auch auf aus
bei beim bin bis bist da dabei dadurch daher dafür damit dann daran darauf darin darum das dass dazu dem den
denen denn der deren des dessen die dies diese diesem diesen dieser dieses doch dort du durch ein eine einem
einen einer eines er es etwa etwas euch euer eure für gegen gewesen hab habe haben hat hatte hatten hier hin
ich ihm ihn ihnen ihr ihre ihrem ihren ihrer ihres im in indem ins ist ja jede jedem jeden jeder jedes jedoch
jene jenem jenen jener jenes kann kein keine keinem keinen keiner konnte können könnte man manche mehr mein
meine mit muss musste nach nicht nichts noch nun nur ob oder ohne sehr sein seine seinem seinen seiner seit
sich sie sind so solche soll sollte sondern sowie über um und uns unser unter viel vom von vor war waren
warum was weil welche welchem welchen welcher welches wenn wer werde werden wie wieder will wir wird wirst
wo wurde wurden zu zum zur zwar zwischen
""".split())


def tokens(text: str) -> list[str]:
    """Lower-cased Unicode word tokens (keeps umlauts, ß and digits)."""
    return WORD_RE.findall(unicodedata.normalize("NFKC", text).lower())


def normalize(text: str) -> str:
    return " ".join(tokens(text))


def content_words(text: str) -> list[str]:
    return [t for t in tokens(text) if t not in GERMAN_STOPWORDS]


class _WordTokenizer:
    """rouge-score's default tokenizer drops every non-ASCII letter; German needs Unicode words."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


_ROUGE = None


def rouge_l(prediction: str, reference: str) -> float:
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_WordTokenizer())
    return _ROUGE.score(reference, prediction)["rougeL"].fmeasure


def sentence_bleu(prediction: str, reference: str) -> float:
    import sacrebleu

    return sacrebleu.sentence_bleu(prediction, [reference]).score / 100.0


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100.0


def token_f1(prediction: str, reference: str) -> float:
    pred, gold = tokens(prediction), tokens(reference)
    if not pred or not gold:
        return float(pred == gold)
    common: dict[str, int] = {}
    for t in gold:
        common[t] = common.get(t, 0) + 1
    overlap = 0
    for t in pred:
        if common.get(t, 0) > 0:
            overlap += 1
            common[t] -= 1
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def span_recall(prediction: str, gold_span: str) -> float:
    span = normalize(gold_span)
    return float(bool(span) and f" {span} " in f" {normalize(prediction)} ")


def faithfulness(answer_text: str, cited_chunks: Sequence[Chunk]) -> float | None:
    words = content_words(answer_text)
    if not words:
        return None
    if not cited_chunks:
        return 0.0
    support = set(tokens("\n".join(render_chunk(i, c) for i, c in enumerate(cited_chunks, start=1))))
    return sum(w in support for w in words) / len(words)


@dataclass
class ExampleScore:
    """Every per-example metric of one prediction; None where the metric does not apply."""

    refused: bool
    cited: list[int]
    rouge_l: float
    bleu: float
    token_f1: float
    gold_span_recall: float | None
    citation_correct: float | None
    faithfulness: float | None
    needless_refusal: bool
    missed_refusal: bool
    wrong_citation: bool

    def to_dict(self) -> dict:
        return asdict(self)


def score_example(prediction: str, example: Mapping[str, Any]) -> ExampleScore:
    """Score one model answer against one dataset row (columns of the dataset schema)."""
    chunks = [c if isinstance(c, Chunk) else Chunk.from_record(c) for c in example["contexts"]]
    pred = parse_answer(prediction, chunks)
    gold = parse_answer(example["answer"], chunks)
    answerable = bool(example["answerable"])
    gold_id = example.get("gold_chunk_id")

    citation_correct = None
    span = None
    if answerable:
        span = span_recall(pred.text, example.get("gold_span") or "") if example.get("gold_span") else None
        first_ok = not pred.is_refusal and bool(pred.cited) and 1 <= pred.cited[0] <= len(chunks) \
            and chunks[pred.cited[0] - 1].id == gold_id
        citation_correct = float(first_ok)
    cited_chunks = [chunks[n - 1] for n in pred.cited if 1 <= n <= len(chunks)]
    faith = None if pred.is_refusal else faithfulness(pred.text, cited_chunks)
    return ExampleScore(
        refused=pred.is_refusal, cited=pred.cited,
        rouge_l=rouge_l(pred.text, gold.text), bleu=sentence_bleu(pred.text, gold.text),
        token_f1=token_f1(pred.text, gold.text), gold_span_recall=span, citation_correct=citation_correct,
        faithfulness=faith,
        needless_refusal=answerable and pred.is_refusal,
        missed_refusal=(not answerable) and not pred.is_refusal,
        wrong_citation=answerable and not pred.is_refusal and citation_correct == 0.0,
    )


def refusal_prf(refused: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float | None]:
    """Precision/recall/F1 with refusal as the positive class (unanswerable examples are positives)."""
    tp = sum(r and not a for r, a in zip(refused, answerable))
    fp = sum(r and a for r, a in zip(refused, answerable))
    fn = sum((not r) and (not a) for r, a in zip(refused, answerable))
    if tp + fn == 0:
        return {"refusal_precision": None, "refusal_recall": None, "refusal_f1": None}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"refusal_precision": precision, "refusal_recall": recall, "refusal_f1": f1}


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def aggregate(scores: Sequence[ExampleScore], examples: Sequence[Mapping[str, Any]],
              predictions: Sequence[str], losses: Sequence[tuple[float, int]] | None = None) -> dict:
    """Split-level metrics. `losses` = (summed NLL, answer token count) per example, if computed."""
    answerable = [bool(e["answerable"]) for e in examples]
    n_answerable = sum(answerable)
    gold_texts = [parse_answer(e["answer"]).text for e in examples]
    pred_texts = [parse_answer(p).text for p in predictions]
    out: dict[str, float | None] = {
        "rouge_l": _mean([s.rouge_l for s in scores]),
        "bleu": corpus_bleu(pred_texts, gold_texts) if scores else None,
        "token_f1": _mean([s.token_f1 for s in scores]),
        "gold_span_recall": _mean([s.gold_span_recall for s in scores]),
        "citation_accuracy": _mean([s.citation_correct for s in scores]),
        **refusal_prf([s.refused for s in scores], answerable),
        "needless_refusal_rate": (sum(s.needless_refusal for s in scores) / n_answerable) if n_answerable else None,
        "faithfulness": _mean([s.faithfulness for s in scores]),
    }
    if losses:
        nll, count = sum(l for l, _ in losses), sum(n for _, n in losses)
        out["eval_loss"] = nll / count if count else None
        out["perplexity"] = math.exp(out["eval_loss"]) if count else None
    return out


# Metrics where lower is better (plots and the card's delta column read this).
LOWER_IS_BETTER = frozenset({"eval_loss", "perplexity", "needless_refusal_rate"})
LABELS = {
    "rouge_l": "ROUGE-L", "bleu": "BLEU", "token_f1": "Token F1", "gold_span_recall": "Gold-span recall",
    "citation_accuracy": "Citation accuracy", "refusal_precision": "Refusal precision",
    "refusal_recall": "Refusal recall", "refusal_f1": "Refusal F1",
    "needless_refusal_rate": "Needless-refusal rate", "faithfulness": "Faithfulness (proxy)",
    "eval_loss": "Eval loss", "perplexity": "Perplexity",
}
