"""`rag-de evaluate` and `rag-de card {model,dataset,space}`.

Only argparse and light project modules load here; torch, transformers and huggingface_hub load inside
the commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _evaluate(args: argparse.Namespace) -> int:
    from evaluation.config import EvalConfig
    from evaluation.runner import evaluate
    from rag_de.config import load, overrides_from_args

    # ConfigError / EvalInputError are UserErrors: rag_de.cli.main prints them in the one error format.
    config = load(EvalConfig, args.config, overrides_from_args(args))
    results = evaluate(config)
    print(f"[evaluate] wrote {Path(config.out) / 'results.json'}")
    for name, row in results["metrics"].items():
        print(f"  {name:<22} base {_fmt(row['base'])}  adapter {_fmt(row['adapter'])}  delta {_fmt(row['delta'])}")
    return 0


def _fmt(value) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def _card_model(args: argparse.Namespace) -> int:
    from model_cards.model_card import render_model_card
    from model_cards.publish import push_card, write_card

    run_dir = Path(args.run_dir)
    text = render_model_card(run_dir, hub_model_id=args.repo)
    out = Path(args.out) if args.out else run_dir / "README.md"
    write_card(out, text)
    print(f"[card] model card -> {out}")
    if args.push:
        from model_cards.model_card import model_repo_id

        url = push_card(text, args.repo or model_repo_id(run_dir), "model")
        print(f"[card] pushed README.md -> {url}")
    return 0


def _card_dataset(args: argparse.Namespace) -> int:
    import json

    stats_path = Path(args.data) / "stats.json"
    if not stats_path.exists():
        from rag_de.errors import UserError

        raise UserError(f"stats.json not found, in {args.data} ({stats_path}); pass the folder written by "
                        "`rag-de build`")
    from model_cards.dataset_card import render_dataset_card
    from model_cards.publish import push_card, write_card

    text = render_dataset_card(json.loads(stats_path.read_text(encoding="utf-8")), args.repo)
    out = Path(args.out) if args.out else Path(args.data) / "README.md"
    write_card(out, text)
    print(f"[card] dataset card -> {out}")
    if args.push:
        print(f"[card] pushed README.md -> {push_card(text, args.repo, 'dataset')}")
    return 0


def _card_space(args: argparse.Namespace) -> int:
    from model_cards.publish import push_card, write_card
    from model_cards.space_card import render_space_card

    fields = {k: v for k, v in {
        "models": args.model, "datasets": args.dataset, "suggested_hardware": args.hardware,
        "title": args.title,
    }.items() if v}
    text = render_space_card(args.kind, args.space, **fields)
    if args.out:
        write_card(Path(args.out), text)
        print(f"[card] Space card -> {args.out}")
    elif not args.push:
        sys.stdout.write(text)
    if args.push:
        print(f"[card] pushed README.md -> {push_card(text, args.space, 'space')}")
    return 0


def register(commands, deploy) -> None:
    """Add `evaluate` and `card` to the top-level `rag-de` parser."""
    from evaluation.config import EvalConfig
    from rag_de.config import add_dataclass_arguments

    ev = commands.add_parser(
        "evaluate", help="compare base model and base + adapter on a dataset split (metrics, plots, errors)",
        description="Greedy, batched generation with the base model alone and with the adapter (same prompts "
        "from dataset_builder.contract, same 4-bit load), then ROUGE-L, BLEU, token F1, gold-span recall, "
        "citation accuracy, refusal precision/recall/F1, a faithfulness proxy, and teacher-forced eval "
        "loss/perplexity. Writes OUT/results.json, OUT/predictions.jsonl, OUT/*.png and "
        "OUT/error_analysis.md. Generations are cached in OUT/generations.jsonl, so a rerun resumes.",
    )
    ev.add_argument("--config", metavar="YAML", help="EvalConfig YAML; flags below override it")
    add_dataclass_arguments(ev, EvalConfig, "evaluation settings")
    ev.set_defaults(func=_evaluate)

    card = commands.add_parser(
        "card", help="(re)generate a model, dataset or Space card from data; --push updates README.md on the Hub",
        description="Cards are rendered from the templates in model_cards/templates and from data (run "
        "folder, dataset stats), never edited by hand. A card that would contain a token or a local path "
        "is refused.",
    )
    sub = card.add_subparsers(dest="card_kind", metavar="KIND", required=True)

    model = sub.add_parser("model", help="adapter model card from a training run folder",
                           description="Render RUN_DIR/README.md from train_config.yaml, train_summary.json, "
                           "trainer_state.json and eval/results.json (if present).")
    model.add_argument("--run-dir", required=True, help="training run folder")
    model.add_argument("--repo", help="model repo id (default: hub_model_id from train_summary.json)")
    model.add_argument("--out", help="where to write the card (default: RUN_DIR/README.md)")
    model.add_argument("--push", action="store_true", help="upload it as README.md of the model repo")
    model.set_defaults(func=_card_model)

    data = sub.add_parser("dataset", help="dataset card from a `rag-de build` folder",
                          description="Render the dataset card from DIR/stats.json.")
    data.add_argument("--data", required=True, help="folder written by `rag-de build` (holds stats.json)")
    data.add_argument("--repo", required=True, help="dataset repo id, e.g. org/spaces-rag-de")
    data.add_argument("--out", help="where to write the card (default: DIR/README.md)")
    data.add_argument("--push", action="store_true", help="upload it as README.md of the dataset repo")
    data.set_defaults(func=_card_dataset)

    space = sub.add_parser("space", help="Space card (front matter + usage) for the demo or training Space",
                           description="Render the README.md of a Gradio Space: front matter (sdk gradio, "
                           "sdk_version of the installed gradio, app_file, models, datasets, suggested "
                           "hardware) and the variables and secrets the Space reads.")
    space.add_argument("--kind", required=True, choices=["demo", "training"], help="which Space")
    space.add_argument("--space", required=True, help="Space id, e.g. org/spaces-rag-de-demo")
    space.add_argument("--model", action="append", metavar="ID", help="model/adapter id shown (repeatable)")
    space.add_argument("--dataset", action="append", metavar="ID", help="dataset id shown (repeatable)")
    space.add_argument("--hardware", help="suggested hardware, e.g. cpu-basic, t4-small, a10g-small")
    space.add_argument("--title", help="Space title")
    space.add_argument("--out", help="write the card here (default: print it, unless --push)")
    space.add_argument("--push", action="store_true", help="upload it as README.md of the Space")
    space.set_defaults(func=_card_space)
