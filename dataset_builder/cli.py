"""`rag-de build` and `rag-de publish`: the dataset builder's command line (heavy imports stay inside)."""

from __future__ import annotations

import argparse


def register(commands, deploy) -> None:
    build = commands.add_parser(
        "build", help="build the German RAG chat dataset (Parquet + stats.json)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn SQuAD-format QA data and/or a document corpus with a QA file into chat examples "
        "that answer only from numbered context chunks, cite the chunk as [n], and refuse when the chunks "
        "lack the answer. Writes OUT/{train,validation,test}.parquet and OUT/stats.json. Without input "
        "flags it builds from the shipped sample data (a fictional module catalog).",
        epilog="Examples:\n"
        "  rag-de build --out data/rag-de\n"
        "  rag-de build --squad ../shared/data/xquad-de/xquad.de.part-a.json --out data/xquad\n"
        "  rag-de build --corpus docs/ --qa qa.jsonl --out data/mine --config build.yaml --seed 7\n"
        "  rag-de build --squad deepset/germanquad:train --out data/gq   (Hub dataset id, needs the Hub)\n"
        "  rag-de build --documents my_docs/ --generate-questions 3 --openai.base_url http://127.0.0.1:8000/v1 "
        "--openai.model Qwen/Qwen2.5-7B-Instruct --out data/mine   (PDF/DOCX/HTML/Markdown; an LLM writes the QA)",
    )
    build.add_argument("--squad", action="append", default=[], metavar="FILE_OR_HUB_ID",
                       help="SQuAD-format JSON file, or a Hub dataset id `owner/name[:split]` (repeatable)")
    build.add_argument("--corpus", action="append", default=[], metavar="DIR_OR_JSONL",
                       help="folder of .md/.txt files (optional YAML front matter) or a JSONL file of "
                       "{id, title, source, text, metadata} (repeatable; pair each with --qa)")
    build.add_argument("--qa", action="append", default=[], metavar="JSONL",
                       help="questions for the preceding --corpus: {id, question, answer, document, answerable}")
    build.add_argument("--documents", action="append", default=[], metavar="DIR",
                       help="folder of PDF, DOCX, HTML, Markdown/text files (repeatable); an LLM writes the "
                       "questions (--generate-questions N); unreadable files are skipped and counted")
    build.add_argument("--generate-questions", dest="cfg:questions.per_chunk", default=argparse.SUPPRESS,
                       metavar="N", help="answerable questions per chunk of the --documents (same as "
                       "--questions.per_chunk); the endpoint is --openai.* or --questions.generator transformers")
    build.add_argument("--out", required=True, help="output folder for the Parquet files and stats.json")
    build.add_argument("--config", default=None, help="YAML file with BuildConfig fields (flags override it)")
    _add_config_flags(build)
    build.set_defaults(func=_run_build)

    publish = commands.add_parser(
        "publish", help="push a built dataset and its dataset card to the Hub in one commit",
        description="Upload OUT/{train,validation,test}.parquet as data/<split>-00000-of-00001.parquet plus a "
        "README.md dataset card (license inherited from the sources) to a Hub dataset repo, in a single "
        "commit so a partial upload never shows. The token comes from HF_TOKEN or `hf auth login`.",
    )
    publish.add_argument("--data", required=True, help="folder written by `rag-de build`")
    publish.add_argument("--repo", required=True, help="dataset repo id, e.g. org/spaces-rag-de")
    publish.add_argument("--private", action="store_true", help="create the repo as private")
    publish.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    publish.add_argument("--message", default=None, help="commit message")
    publish.set_defaults(func=_run_publish)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from dataset_builder.build_config import BuildConfig
    from rag_de.config import add_dataclass_arguments

    add_dataclass_arguments(parser, BuildConfig, "BuildConfig fields (override --config)")


def _run_build(args) -> int:
    from dataset_builder.pipeline import run_build_cli

    return run_build_cli(args)


def _run_publish(args) -> int:
    from dataset_builder.publish import run_publish_cli

    return run_publish_cli(args)
