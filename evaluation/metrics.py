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
* `citation_accuracy_multi`: `citation_accuracy` on the answerable rows whose prompt holds 2+ chunks (with
  one chunk, `[1]` is right by construction, so those rows only inflate the figure); the headline citation
  figure. None when there is no such row.
* Grounded refusal, after Trust-Align / TRUST-SCORE (Song et al. 2024, "Measuring and Enhancing
  Trustworthiness of LLMs in RAG through Grounded Attributions and Learning to Refuse", ICLR 2025,
  arXiv:2409.11242; `compute_macro_metrics` in github.com/declare-lab/trust-align): `answered_f1` is the
  F1 with "answered" as the positive class (answerable examples are the positives, a non-refusal
  prediction is a positive prediction; their `answerable_f1`), and `f1_gr` = (refusal_f1 + answered_f1) / 2
  (their F1-GR, `macro_f1`), so refusing everything or nothing cannot score well. Their code reports 0 for
  a class the split lacks; here both are None then (undefined, as `refusal_f1`). Figures are 0..1, the
  paper's are percentages.
* `answered_correctness`: over the answerable examples the model answered (did not refuse) and that have a
  gold span, the share whose answer contains the gold span (`span_recall`): sum(AC_q) / |A_g ∩ A_r|, where
  A_g = answerable, A_r = answered and AC_q = span recall (1 gold claim per question, always supported by
  the prompt's gold chunk, so it is Trust-Align's calibrated AC_q). It is correctness *when it answers*,
  blind to how often it refuses. Trust-Align's precision P_AC = sum(AC_q) / |A_r| (unanswerable-but-answered
  rows count 0) and recall R_AC = sum(AC_q) / |A_g| (refused rows count 0), i.e. answered_correctness
  scaled by |A_g ∩ A_r| / |A_r| and |A_g ∩ A_r| / |A_g|; `f1_ac` = their F1-AC, the harmonic mean of the two.
* `refusal_auc`: ROC AUC of a refusal score (higher = more likely to refuse) for unanswerable (positive)
  vs answerable examples, by Mann-Whitney U (ties count 1/2); None when a class is empty. In `aggregate`
  only when scores are given (free text has none; the decision probabilities and the BM25 baseline do).
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


def citation_accuracy_multi(scores: Sequence[ExampleScore], examples: Sequence[Mapping[str, Any]]) -> float | None:
    """Citation accuracy over answerable rows with 2+ chunks in the prompt (one chunk: [1] is trivially right)."""
    return _mean([s.citation_correct for s, e in zip(scores, examples)
                  if s.citation_correct is not None and len(e["contexts"]) >= 2])


def answered_f1(refused: Sequence[bool], answerable: Sequence[bool]) -> float | None:
    """Trust-Align's answered F1: positives = answerable examples, positive prediction = not refused."""
    tp = sum((not r) and a for r, a in zip(refused, answerable))
    fp = sum((not r) and (not a) for r, a in zip(refused, answerable))
    fn = sum(r and a for r, a in zip(refused, answerable))
    if tp + fn == 0:
        return None
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def f1_gr(refused: Sequence[bool], answerable: Sequence[bool]) -> float | None:
    """Trust-Align's grounded-refusal F1: the macro mean of refusal F1 and answered F1 (None if a class is empty)."""
    ref, ans = refusal_prf(refused, answerable)["refusal_f1"], answered_f1(refused, answerable)
    return None if ref is None or ans is None else (ref + ans) / 2


def _correctness(scores: Sequence[ExampleScore], examples: Sequence[Mapping[str, Any]]):
    """(sum of AC_q over answered answerable rows, |A_g ∩ A_r|, |A_g|, |A_r|); rows without a gold span skipped."""
    total = both = gold = answered = 0
    for s, e in zip(scores, examples):
        answerable = bool(e["answerable"])
        if answerable and s.gold_span_recall is None:
            continue                          # no gold span: correctness is undefined for this row
        gold += answerable
        answered += not s.refused
        if answerable and not s.refused:
            both += 1
            total += s.gold_span_recall
    return total, both, gold, answered


def answered_correctness(scores: Sequence[ExampleScore], examples: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of the answered answerable examples whose answer holds the gold span (None: none answered)."""
    total, both, _, _ = _correctness(scores, examples)
    return total / both if both else None


def f1_ac(scores: Sequence[ExampleScore], examples: Sequence[Mapping[str, Any]]) -> float | None:
    """Trust-Align's F1-AC: harmonic mean of P_AC = sum(AC)/|answered| and R_AC = sum(AC)/|answerable|."""
    total, _, gold, answered = _correctness(scores, examples)
    if not gold:
        return None
    precision, recall = (total / answered if answered else 0.0), total / gold
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def refusal_auc(scores: Sequence[float], answerable: Sequence[bool]) -> float | None:
    """AUC of a refusal score (higher = refuse) for unanswerable vs answerable: Mann-Whitney U, ties 1/2.

    Computed from average ranks (O(n log n), no scipy/sklearn): AUC = (R_pos - n_pos (n_pos + 1) / 2) /
    (n_pos n_neg), R_pos = the rank sum of the unanswerable examples. None when either class is empty.
    """
    if len(scores) != len(answerable):
        raise ValueError(f"refusal_auc: {len(scores)} scores for {len(answerable)} examples")
    n_pos = sum(not a for a in answerable)
    n_neg = len(answerable) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 + 1          # average 1-based rank of the tied block
        start = end + 1
    rank_sum = sum(r for r, a in zip(ranks, answerable) if not a)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def aggregate(scores: Sequence[ExampleScore], examples: Sequence[Mapping[str, Any]],
              predictions: Sequence[str], losses: Sequence[tuple[float, int]] | None = None,
              refusal_scores: Sequence[float] | None = None) -> dict:
    """Split-level metrics. `losses` = (summed NLL, answer token count) per example, if computed;
    `refusal_scores` (higher = refuse) add `refusal_auc`."""
    answerable = [bool(e["answerable"]) for e in examples]
    n_answerable = sum(answerable)
    gold_texts = [parse_answer(e["answer"]).text for e in examples]
    pred_texts = [parse_answer(p).text for p in predictions]
    out: dict[str, float | None] = {
        "rouge_l": _mean([s.rouge_l for s in scores]),
        "bleu": corpus_bleu(pred_texts, gold_texts) if scores else None,
        "token_f1": _mean([s.token_f1 for s in scores]),
        "gold_span_recall": _mean([s.gold_span_recall for s in scores]),
        "answered_correctness": answered_correctness(scores, examples),
        "f1_ac": f1_ac(scores, examples),
        "citation_accuracy": _mean([s.citation_correct for s in scores]),
        "citation_accuracy_multi": citation_accuracy_multi(scores, examples),
        **refusal_prf([s.refused for s in scores], answerable),
        "answered_f1": answered_f1([s.refused for s in scores], answerable),
        "f1_gr": f1_gr([s.refused for s in scores], answerable),
        "needless_refusal_rate": (sum(s.needless_refusal for s in scores) / n_answerable) if n_answerable else None,
        "faithfulness": _mean([s.faithfulness for s in scores]),
    }
    if refusal_scores is not None:
        out["refusal_auc"] = refusal_auc(refusal_scores, answerable)
    if losses:
        nll, count = sum(l for l, _ in losses), sum(n for _, n in losses)
        out["eval_loss"] = nll / count if count else None
        out["perplexity"] = math.exp(out["eval_loss"]) if count else None
    return out


# The figures issue 12 judges a model by, in the order the card's comparison table and the plot show them.
HEADLINE = ("citation_accuracy_multi", "refusal_f1", "needless_refusal_rate", "f1_gr", "answered_correctness")
# Metrics where lower is better (plots and the card's delta column read this).
LOWER_IS_BETTER = frozenset({"eval_loss", "perplexity", "needless_refusal_rate"})
LABELS = {
    "rouge_l": "ROUGE-L", "bleu": "BLEU", "token_f1": "Token F1", "gold_span_recall": "Gold-span recall",
    "citation_accuracy": "Citation accuracy", "citation_accuracy_multi": "Citation accuracy (2+ chunks)",
    "refusal_precision": "Refusal precision", "refusal_recall": "Refusal recall", "refusal_f1": "Refusal F1",
    "answered_f1": "Answered F1", "f1_gr": "F1-GR (grounded refusal)", "refusal_auc": "Refusal AUC",
    "answered_correctness": "Answered correctness", "f1_ac": "F1-AC (answer correctness)",
    "needless_refusal_rate": "Needless-refusal rate", "faithfulness": "Faithfulness (proxy)",
    "eval_loss": "Eval loss", "perplexity": "Perplexity",
}
