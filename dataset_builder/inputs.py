"""The build's inputs: SQuAD files or Hub datasets, corpus + QA pairs and folders of your own documents
(PDF/DOCX/HTML/Markdown, whose questions are generated later, once they are chunked).

Kept apart from the build itself so that reading (and its bad-record handling, in the readers) can be
used and tested without chunking, searching or writing anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dataset_builder.build_config import BuildConfig
from dataset_builder.records import Document, InputError, Question, SkipLog, sha256_file

SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"
SAMPLE_ORIGIN = "sample-modules"
SAMPLE_LICENSE = "cc0-1.0"


@dataclass
class BuildInputs:
    squad: list[str] = field(default_factory=list)               # files or Hub ids
    corpora: list[tuple[str, str]] = field(default_factory=list)  # (corpus path, QA file)
    documents: list[str] = field(default_factory=list)           # folders of PDF/DOCX/HTML/Markdown files

    @classmethod
    def sample(cls) -> "BuildInputs":
        return cls(corpora=[(str(SAMPLE_DATA / "catalog"), str(SAMPLE_DATA / "qa.jsonl"))])


def read_inputs(inputs: BuildInputs, config: BuildConfig, skips: SkipLog):
    """All documents and questions, plus a description of each input (origin, license, sha256; for a
    documents folder also its reading report: files read and skipped by reason)."""
    from dataset_builder.corpus_reader import read_corpus, read_qa
    from dataset_builder.squad_reader import read_squad_file, read_squad_hub, slug

    docs: list[Document] = []
    questions: list[Question] = []
    sources: list[dict] = []
    seen_ids: set[str] = set()
    doc_ids: set[str] = set()
    for spec in inputs.squad:
        if Path(spec).exists() or spec.endswith(".json"):
            d, q, info = read_squad_file(spec, skips, seen_ids, doc_ids)
            info["sha256"] = sha256_file(Path(spec))
        else:
            d, q, info = read_squad_hub(spec, config.hub_split, skips, seen_ids, doc_ids)
        docs += d
        questions += q
        sources.append({**info, "documents": len(d), "questions": len(q)})
    for corpus_path, qa_path in inputs.corpora:
        corpus_path = Path(corpus_path)
        is_sample = corpus_path.resolve().is_relative_to(SAMPLE_DATA)
        origin = SAMPLE_ORIGIN if is_sample else slug(corpus_path.stem).lower()
        d = read_corpus(corpus_path, origin, skips, doc_ids)
        q = read_qa(qa_path, d, origin, skips, seen_ids)
        files = sorted(corpus_path.rglob("*")) if corpus_path.is_dir() else [corpus_path]
        digest = {str(p.relative_to(corpus_path) if corpus_path.is_dir() else p.name): sha256_file(p)
                  for p in files if p.is_file()}
        docs += d
        questions += q
        sources.append({"input": str(corpus_path), "qa": str(qa_path), "kind": "corpus", "origin": origin,
                        "license": SAMPLE_LICENSE if is_sample else config.license, "documents": len(d),
                        "questions": len(q), "sha256": {"qa": sha256_file(Path(qa_path)), "corpus": digest}})
    for folder in inputs.documents:
        from dataset_builder.document_reader import read_documents

        folder = Path(folder)
        origin = slug(folder.resolve().name).lower()
        d, report = read_documents(folder, origin, config.documents, skips, doc_ids)
        docs += d
        digest = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
        sources.append({"input": str(folder), "kind": "documents", "origin": origin, "license": config.license,
                        "documents": len(d), "questions": 0, "reading": report, "sha256": {"documents": digest}})
    if not questions and not inputs.documents:
        raise InputError("no usable questions in the inputs; see the skip reasons: "
                         + json.dumps(skips.as_dict()["counts"], ensure_ascii=False))
    return docs, questions, sources
