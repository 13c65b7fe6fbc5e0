"""`rag-de`: one command line for the whole pipeline.

Each package contributes its subcommands through `register(commands, deploy)` in its own `cli.py`;
those modules import only argparse at module level, so `rag-de --help` stays fast and heavy libraries
(torch, transformers, gradio) load only for the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rag_de import __version__
from rag_de.errors import UserError, report

# Order = order in `rag-de --help`, which follows the data flow.
COMMAND_MODULES = (
    "local_hub.cli",        # hub serve | hub token create
    "dataset_builder.cli",  # build, publish
    "training_space.cli",   # train, export-autotrain, deploy training-space
    "model_cards.cli",      # evaluate, card
    "serving.cli",          # export merged, export gguf
    "demo_space.cli",       # demo, deploy demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag-de",
        description="Build a grounded, citing, refusing German RAG chatbot on the Hugging Face stack: "
        "files -> dataset (Hub) -> QLoRA adapter + card (Hub) -> demo Space.",
    )
    parser.add_argument("--version", action="version", version=f"spaces-rag-de {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    deploy_parser = commands.add_parser(
        "deploy", help="create/update a Space on the Hub (training Space or demo Space)",
        description="Create or update a Gradio Space on the Hub (HF_ENDPOINT): app, requirements, card, "
        "variables and secrets set through the API (never written into a file).",
    )
    deploy = deploy_parser.add_subparsers(dest="deploy_target", metavar="TARGET", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, deploy)
    from rag_de import quickstart

    quickstart.register(commands)
    _name_commands(parser)
    return parser


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command parser its name (`args.command_name`, e.g. "card dataset") for `report`.

    argparse has no public list of a parser's subcommands; `_SubParsersAction.choices` is the stable way
    tools such as argcomplete walk them. The deepest parser's default wins, so the name is the full path.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(command_name=sub.prog.removeprefix("rag-de ").strip())
                _name_commands(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:   # bad input, found while the command ran: the one error format, no traceback
        return report(getattr(args, "command_name", args.command), exc)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
