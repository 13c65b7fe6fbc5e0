"""The shipped sample data (fictional module catalog + hand-written QA) is the quickstart's input:
these checks keep it loadable, consistent and honest about what the catalog actually says."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest
import yaml

SAMPLE = Path(__file__).resolve().parents[1] / "dataset_builder" / "sample_data"
CATALOG = SAMPLE / "catalog"
QA = SAMPLE / "qa.jsonl"

FIELDS = {"module_code": str, "name": str, "ects": int, "semester": int,
          "responsible": str, "type": str, "language": str}
SECTIONS = ["Lernziele", "Inhalte", "Prüfung", "Voraussetzungen und Arbeitsaufwand"]


def split_module(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    match = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", text, flags=re.S)
    assert match, f"{path.name}: must start with a YAML front matter block between `---` lines"
    return yaml.safe_load(match.group(1)), match.group(2)


@pytest.fixture(scope="module")
def modules() -> dict[str, tuple[dict, str]]:
    return {p.name: split_module(p) for p in sorted(CATALOG.glob("*.md"))}


@pytest.fixture(scope="module")
def qa() -> list[dict]:
    rows = []
    for n, line in enumerate(QA.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{QA.name}:{n}: empty line"
        rows.append(json.loads(line))
    return rows


def test_catalog_has_enough_modules_with_typed_front_matter(modules):
    assert len(modules) >= 40
    for name, (meta, _) in modules.items():
        for key, kind in FIELDS.items():
            assert isinstance(meta.get(key), kind) and not isinstance(meta.get(key), bool), \
                f"{name}: front matter `{key}` must be {kind.__name__}, got {meta.get(key)!r}"
        assert name == f"{meta['module_code']}.md", f"{name}: file name must be the module code"
        assert meta["type"] in {"Pflichtmodul", "Wahlpflichtmodul"}, name
        assert meta["language"] in {"Deutsch", "Englisch"}, name
        assert 1 <= meta["semester"] <= 6 and meta["ects"] > 0, name


def test_module_bodies_have_sections_and_repeat_key_facts(modules):
    for name, (meta, body) in modules.items():
        assert body.startswith(f"# {meta['module_code']} {meta['name']}\n"), f"{name}: heading"
        assert re.findall(r"^## (.+)$", body, flags=re.M) == SECTIONS, f"{name}: sections"
        assert 150 <= len(body.split()) <= 260, f"{name}: {len(body.split())} words"
        assert f"{meta['ects']} ECTS" in body, f"{name}: ECTS not stated in the text"
        assert meta["responsible"] in body, f"{name}: responsible person not named in the text"


def test_program_adds_up_to_180_ects(modules):
    compulsory = sum(m["ects"] for m, _ in modules.values() if m["type"] == "Pflichtmodul")
    electives = [m["ects"] for m, _ in modules.values() if m["type"] == "Wahlpflichtmodul"]
    assert compulsory + 15 == 180 and sum(electives) >= 15


def test_qa_records_are_well_formed(qa, modules):
    assert len(qa) >= 200
    ids = [r["id"] for r in qa]
    assert len(ids) == len(set(ids)), [i for i, c in collections.Counter(ids).items() if c > 1]
    for r in qa:
        assert set(r) == {"id", "question", "answer", "document", "answerable"}, r["id"]
        assert isinstance(r["answerable"], bool), r["id"]
        assert r["question"].strip() and r["document"] in modules, r["id"]
        if not r["answerable"]:
            assert r["answer"] == "", f"{r['id']}: unanswerable questions have an empty answer"


def test_answer_spans_occur_once_in_the_document_body(qa, modules):
    for r in (r for r in qa if r["answerable"]):
        body = modules[r["document"]][1]
        assert 1 <= len(r["answer"].split()) <= 8, f"{r['id']}: keep spans short"
        assert body.count(r["answer"]) == 1, \
            f"{r['id']}: answer {r['answer']!r} occurs {body.count(r['answer'])}x in the body of {r['document']}"


def test_question_counts(qa, modules):
    assert sum(not r["answerable"] for r in qa) >= 40
    per_module = collections.Counter(r["document"] for r in qa)
    thin = {name: per_module[name] for name in modules if per_module[name] < 3}
    assert not thin, f"modules with fewer than 3 questions: {thin}"
    assert len({r["question"] for r in qa}) == len(qa), "duplicate question text"
