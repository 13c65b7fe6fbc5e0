"""SQuAD-format input (GermanQuAD, XQuAD-de, SQuAD 2.0 style): a local JSON file or a Hub dataset.

Each paragraph becomes a document; the article title is the split unit, so no article's paragraphs land
in two splits. Answer offsets are checked against the text: a wrong `answer_start` is repaired when the
answer occurs exactly once in the paragraph, otherwise the question is reported and skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dataset_builder.records import Document, InputError, Question, SkipLog, load_json

# Known public sources: origin label, what the model sees as "Quelle", and the license they impose.
KNOWN_SOURCES = {
    "xquad": ("xquad-de", "Wikipedia (XQuAD)", "cc-by-sa-4.0"),
    "germanquad": ("germanquad", "Wikipedia (GermanQuAD)", "cc-by-sa-4.0"),  # CC BY 4.0 on Wikipedia (BY-SA) text
}


def slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text.strip(), flags=re.UNICODE).strip("_") or "x"


def describe_source(name: str) -> tuple[str, str, str | None]:
    """(origin, source label, license or None) for an input file name or Hub id."""
    low = name.lower()
    for key, known in KNOWN_SOURCES.items():
        if key in low:
            return known
    stem = Path(name).name.split(".")[0] if "/" not in name or Path(name).exists() else name.split("/")[-1]
    return slug(stem).lower(), Path(name).name, None


def read_squad_file(path: str | Path, skips: SkipLog, seen_ids: set[str], doc_ids: set[str]):
    """A local SQuAD JSON file -> (documents, questions, source info)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: SQuAD file not found (give a .json file or a Hub dataset id owner/name)")
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InputError(f"{path}: not SQuAD format; expected {{\"version\": ..., \"data\": [{{\"title\", "
                         "\"paragraphs\": [{\"context\", \"qas\": [...]}]}]}")
    origin, source, license_id = describe_source(path.name)
    docs, questions = parse_squad(data["data"], str(path), origin, source, skips, seen_ids, doc_ids)
    return docs, questions, {"input": str(path), "kind": "squad", "origin": origin, "license": license_id}


def read_squad_hub(spec: str, default_split: str, skips: SkipLog, seen_ids: set[str], doc_ids: set[str]):
    """`owner/name[:split]` through `datasets` (columns id, title?, context, question, answers)."""
    import datasets

    repo, _, split = spec.partition(":")
    split = split or default_split
    try:
        rows = datasets.load_dataset(repo, split=split)
    except Exception as exc:  # noqa: BLE001 - any failure here means "cannot read this input"
        raise InputError(f"{spec}: cannot load the Hub dataset ({type(exc).__name__}: {exc}); check the id, "
                         "the split, HF_ENDPOINT/HF_TOKEN, or download the JSON and pass the file") from None
    missing = {"context", "question", "answers"} - set(rows.column_names)
    if missing:
        raise InputError(f"{spec}: not SQuAD-format columns; missing {sorted(missing)} (has {rows.column_names})")
    articles: dict[str, dict[str, dict]] = {}
    for i, row in enumerate(rows):
        title = row.get("title") or (row["context"] or "").split("\n", 1)[0][:80] or f"article-{i}"
        paragraphs = articles.setdefault(title, {})
        paragraph = paragraphs.setdefault(row["context"], {"context": row["context"], "qas": []})
        answers = row["answers"] or {}
        paragraph["qas"].append({
            "id": row.get("id") or f"{i}", "question": row["question"],
            "answers": [{"text": t, "answer_start": s}
                        for t, s in zip(answers.get("text", []), answers.get("answer_start", []))],
            "is_impossible": bool(row.get("is_impossible", False)),
        })
    data = [{"title": t, "paragraphs": list(p.values())} for t, p in articles.items()]
    origin, source, license_id = describe_source(repo)
    docs, questions = parse_squad(data, f"{repo}:{split}", origin, source, skips, seen_ids, doc_ids)
    return docs, questions, {"input": f"{repo}:{split}", "kind": "squad-hub", "origin": origin,
                             "license": license_id}


def _unique_doc_id(base: str, doc_ids: set[str]) -> str:
    doc_id, n = base, 2
    while doc_id in doc_ids:
        doc_id, n = f"{base}-{n}", n + 1
    doc_ids.add(doc_id)
    return doc_id


def resolve_span(context: str, text: str, start: Any, where: str, skips: SkipLog) -> int | None:
    """The checked offset of `text` in `context`: as given, repaired when unique, else None (reported)."""
    if isinstance(start, int) and not isinstance(start, bool) and context[start:start + len(text)] == text:
        return start
    first = context.find(text)
    if first < 0:
        skips.skip("answer_not_in_context", where, f"answer {text!r} does not occur in the context",
                   "correct the answer text so it is a verbatim span of the context")
        return None
    if context.find(text, first + 1) >= 0:
        count = len(re.findall(re.escape(text), context))
        skips.skip("answer_start_ambiguous", where,
                   f"answer_start {start!r} does not point at {text!r}, which occurs {count} times",
                   "set answer_start to the character offset of the intended occurrence")
        return None
    skips.note("answer_start_repaired", where, f"answer_start {start!r} -> {first} for {text!r}")
    return first


def parse_squad(articles: list, where_file: str, origin: str, source: str, skips: SkipLog,
                seen_ids: set[str], doc_ids: set[str]) -> tuple[list[Document], list[Question]]:
    docs: list[Document] = []
    questions: list[Question] = []
    for ai, article in enumerate(articles):
        at = f"{where_file}: data[{ai}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            skips.skip("malformed_article", at, "article without a `paragraphs` list")
            continue
        title = str(article.get("title") or f"article-{ai}")
        group = f"{origin}/{title}"
        for pi, paragraph in enumerate(article["paragraphs"]):
            pat = f"{at}.paragraphs[{pi}]"
            if not isinstance(paragraph, dict):
                skips.skip("malformed_paragraph", pat, "paragraph is not an object")
                continue
            context = paragraph.get("context")
            qas = paragraph.get("qas") if isinstance(paragraph.get("qas"), list) else []
            if not isinstance(context, str) or not context.strip():
                for qi, qa in enumerate(qas or [None]):
                    qid = qa.get("id") if isinstance(qa, dict) else None
                    skips.skip("empty_context", f"{pat}.qas[{qi}] (id {qid})" if qa else pat,
                               "the paragraph's context is empty", "give the paragraph its text")
                continue
            doc = Document(doc_id=_unique_doc_id(f"{origin}/{slug(title)}/p{pi}", doc_ids), text=context,
                           title=title.replace("_", " "), source=source, metadata={}, group=group,
                           origin=origin, where=pat)
            for qi, qa in enumerate(qas):
                q = _parse_qa(qa, context, doc, f"{pat}.qas[{qi}]", f"{origin}-{ai}-{pi}-{qi}", skips, seen_ids)
                if q is not None:
                    questions.append(q)
            docs.append(doc)
    return docs, questions


def _parse_qa(qa: Any, context: str, doc: Document, where: str, fallback_id: str, skips: SkipLog,
              seen_ids: set[str]) -> Question | None:
    if not isinstance(qa, dict):
        skips.skip("malformed_question", where, "question entry is not an object")
        return None
    qid = str(qa.get("id") or "")
    if not qid:
        qid = fallback_id
        skips.note("generated_id", where, f"no id; using {qid}")
    where = f"{where} (id {qid})"
    if qid in seen_ids:
        skips.skip("duplicate_id", where, f"id {qid} was already used by an earlier question",
                   "give every question a unique id")
        return None
    question = str(qa.get("question") or "").strip()
    if not question:
        skips.skip("empty_question", where, "the question text is empty")
        return None
    answers = qa.get("answers") if isinstance(qa.get("answers"), list) else []
    answers = [a for a in answers if isinstance(a, dict) and str(a.get("text") or "").strip()]
    if qa.get("is_impossible") and not answers:
        seen_ids.add(qid)
        return Question(qid, question, doc.doc_id, "", None, False, doc.origin, doc.group, where)
    if not answers:
        skips.skip("no_answer", where, "no answer text and not marked is_impossible",
                   "add answers[{text, answer_start}] or set is_impossible: true")
        return None
    raw = str(answers[0]["text"])
    text = raw.strip()
    start = answers[0].get("answer_start")
    if isinstance(start, int) and not isinstance(start, bool):
        start += len(raw) - len(raw.lstrip())
    offset = resolve_span(context, text, start, where, skips)
    if offset is None:
        return None
    seen_ids.add(qid)
    return Question(qid, question, doc.doc_id, text, offset, True, doc.origin, doc.group, where)
