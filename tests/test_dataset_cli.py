"""`rag-de build` from the command line: YAML config + flag overrides, clear errors, the sample data."""

from __future__ import annotations

import json
from pathlib import Path

from dataset_builder.build_config import BuildConfig
from rag_de.cli import main as rag_de
from rag_de.config import load

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
CORPUS = ["--corpus", str(FIXTURE / "catalog"), "--qa", str(FIXTURE / "qa.jsonl")]


def test_config_file_and_flags(tmp_path, capsys):
    config_path = tmp_path / "build.yaml"
    config_path.write_text("seed: 1\nk: 2\nunanswerable_share: 0.2\ncheck:\n  min_overlap: 0.9\n", encoding="utf-8")
    assert rag_de(["build", *CORPUS, "--out", str(tmp_path / "out"), "--config", str(config_path), "--seed", "9",
                   "--check.max_answer_words", "50"]) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["seed"] == 9 and stats["config"]["k"] == 2 and stats["config"]["unanswerable_share"] == 0.2
    assert stats["config"]["check"] == {"min_overlap": 0.9, "max_answer_words": 50}
    assert {int(n) for s in stats["splits"].values() for n in s["contexts_per_example"]} <= {1, 2}
    assert "[build] 25 examples" in capsys.readouterr().out


def test_bad_config_and_flags_are_clear_errors(tmp_path, capsys):
    config_path = tmp_path / "bad.yaml"
    config_path.write_text("seeed: 1\n", encoding="utf-8")
    assert rag_de(["build", *CORPUS, "--out", str(tmp_path / "o"), "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag-de build: error: ") and "unknown key(s) ['seeed']" in err
    assert rag_de(["build", *CORPUS, "--out", str(tmp_path / "o"), "--min_k", "5"]) == 2
    assert "need 1 <= min_k <= k" in capsys.readouterr().err
    assert rag_de(["build", "--corpus", str(FIXTURE / "catalog"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag-de build: error: 1 --corpus but 0 --qa") and "give one --qa per --corpus" in err
    assert rag_de(["build", "--squad", str(tmp_path / "fehlt.json"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag-de build: error: ") and "fehlt.json: SQuAD file not found" in err


def test_shipped_example_configs_are_valid():
    for path in sorted((REPO / "dataset_builder" / "configs").glob("*.yaml")):
        config = load(BuildConfig, path).validate()
        assert config.writer in ("extractive", "transformers", "openai"), path


def test_no_inputs_builds_the_shipped_sample_data(tmp_path, capsys):
    assert rag_de(["build", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "using the shipped sample data" in captured.err
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["origins"] == ["sample-modules"] and stats["licenses"] == ["cc0-1.0"]
    assert stats["totals"]["examples"] >= 200 and stats["totals"]["unanswerable"] >= 40
    assert not stats["skipped"]["counts"], stats["skipped"]
