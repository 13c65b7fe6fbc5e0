"""`rag-de demo` (run the Gradio demo locally) and `rag-de deploy demo` (publish it as a Space).

Only argparse and the settings dataclass load here; gradio, torch and the Hub client load inside the
commands, so `rag-de --help` stays fast.
"""

from __future__ import annotations

import argparse
import os

from demo_space.settings import DemoConfig

SPACE_TOKEN_ENV = "RAG_DE_SPACE_TOKEN"
LOCAL_HUB = "http://127.0.0.1:8080"  # `rag-de hub serve`'s default address


def _config(args: argparse.Namespace) -> DemoConfig:
    from rag_de.config import overrides_from_args

    return DemoConfig.from_env(**overrides_from_args(args))


def _demo(args: argparse.Namespace) -> int:
    # huggingface_hub reads HF_ENDPOINT when first imported, so it is set before the app is imported.
    os.environ["HF_ENDPOINT"] = args.endpoint
    print(f"[demo] Hub endpoint: {args.endpoint}", flush=True)
    from demo_space.app import main

    return main(_config(args), host=args.host, port=args.port, share=args.share == "yes")


def _deploy(args: argparse.Namespace) -> int:
    from demo_space.deploy import deploy_space

    url = deploy_space(args.space, _config(args), hardware=args.hardware, private=args.private,
                       token_env=args.space_token_env)
    print(url)
    return 0


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    from rag_de.config import add_dataclass_arguments

    add_dataclass_arguments(parser, DemoConfig, "demo settings (default: from RAG_DE_* environment variables)")
    parser.add_argument("--base", dest="cfg:base_model", default=argparse.SUPPRESS, metavar="HUB_ID",
                        help="short for --base-model")


def register(commands, deploy) -> None:
    """Add `demo` to the top-level parser and `demo` to `rag-de deploy`."""
    demo = commands.add_parser(
        "demo", help="start the Gradio demo locally (base + adapter in 4-bit, BM25 or hybrid retrieval)",
        description="Start the demo Space's app on this machine: the base model in 4-bit NF4 plus the PEFT "
        "adapter, BM25 retrieval over the dataset's contexts or uploaded documents, streamed cited answers. "
        "Models and data come from HF_ENDPOINT (the local Hub when `rag-de hub serve` runs). Example: "
        "rag-de demo --adapter org/spaces-rag-de-adapter --dataset org/spaces-rag-de",
    )
    _add_settings_flags(demo)
    demo.add_argument("--endpoint", default=os.environ.get("HF_ENDPOINT") or LOCAL_HUB,
                      help=f"Hub the models and data come from (default: $HF_ENDPOINT, else the local Hub {LOCAL_HUB})")
    demo.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    demo.add_argument("--share", choices=["yes", "no"], default="no",
                      help="create a public gradio.live link (default: no)")
    demo.set_defaults(func=_demo)

    if deploy is None:
        return
    space = deploy.add_parser(
        "demo", help="create/update the demo Space (app, requirements, card; variables and secrets via API)",
        description="Create the Gradio Space SPACE (if missing) and upload, in one commit, the app with the "
        "project modules it needs, a pinned requirements.txt and the Space card. The demo settings become "
        "Space variables; the Space's HF_TOKEN secret is set from the environment variable named by "
        f"--space-token-env (default {SPACE_TOKEN_ENV}), never from a flag or a file. Example: rag-de deploy "
        "demo --space org/spaces-rag-de-demo --adapter org/spaces-rag-de-adapter",
    )
    space.add_argument("--space", required=True, metavar="ORG/NAME", help="Space repo id")
    _add_settings_flags(space)
    space.add_argument("--hardware", default=None,
                       help="request Space hardware, e.g. cpu-basic, t4-small, a10g-small (default: leave as is)")
    space.add_argument("--private", action="store_true", help="create the Space private")
    space.add_argument("--space-token-env", default=SPACE_TOKEN_ENV, metavar="VAR",
                       help="environment variable whose value becomes the Space secret HF_TOKEN (needed for "
                       f"private adapters/datasets); unset variable: no secret (default: {SPACE_TOKEN_ENV})")
    space.set_defaults(func=_deploy)
