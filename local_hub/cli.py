"""`rag-de hub ...`: run the local Hub-compatible server and manage its users and tokens.

Only argparse is imported here; the server (starlette, uvicorn) loads inside the command, so
`rag-de --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from local_hub.settings import LocalHubConfig


def _serve(args: argparse.Namespace) -> int:
    from local_hub.server import serve
    from rag_de.config import load, overrides_from_args

    config = load(LocalHubConfig, overrides=overrides_from_args(args))
    serve(args.data_dir, host=args.host, port=args.port, log_level=args.log_level, config=config)
    return 0


def _token_create(args: argparse.Namespace) -> int:
    from local_hub.admin import create_token

    # The token is the only thing on stdout, so `TOKEN=$(rag-de hub token create ...)` works.
    print(create_token(args.data_dir, args.user, args.role, orgs=tuple(args.org or ())))
    return 0


def _token_list(args: argparse.Namespace) -> int:
    import time

    from local_hub.admin import list_tokens

    print(f"{'ID':<12}  {'USER':<16} {'ROLE':<5}  {'NAME':<16} CREATED (UTC)")
    for t in list_tokens(args.data_dir, args.user):
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.created_at))
        print(f"{t.id:<12}  {t.user:<16} {t.role:<5}  {t.name:<16} {created}")
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from local_hub.admin import revoke_token
    from local_hub.storage import StorageError

    try:
        t = revoke_token(args.data_dir, args.token_id)
    except StorageError as e:
        print(f"rag-de hub token revoke: error: {e}, in {args.data_dir}, "
              "run `rag-de hub token list --data-dir DIR` for the ids", file=sys.stderr)
        return 2
    print(f"revoked token {t.id} of {t.user} ({t.role}, {t.name})")
    return 0


def register(commands, deploy) -> None:
    """Add `hub serve` and `hub token create/list/revoke` to the top-level `rag-de` parser."""
    hub = commands.add_parser(
        "hub", help="run the local Hub-compatible server (offline publishing and tests)",
        description="A server that speaks the Hugging Face Hub HTTP API (models, datasets, Spaces), so the "
        "unchanged huggingface_hub and datasets clients work offline: point HF_ENDPOINT at it.",
    )
    sub = hub.add_subparsers(dest="hub_command", metavar="ACTION", required=True)

    serve = sub.add_parser(
        "serve", help="start the server",
        description="Serve the Hub API from DIR (blobs + SQLite). The first start creates user `admin` "
        "(member of org `org`) and writes its write token to DIR/token (mode 600). Then: "
        "export HF_ENDPOINT=http://HOST:PORT HF_TOKEN=$(cat DIR/token).",
    )
    serve.add_argument("--data-dir", required=True, help="storage folder (created if missing)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default: 8080)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface to bind (default: 127.0.0.1; use 0.0.0.0 to share on a network)")
    serve.add_argument("--log-level", default="warning",
                       choices=["critical", "error", "warning", "info", "debug"],
                       help="uvicorn log level (default: warning)")
    from rag_de.config import add_dataclass_arguments  # light (argparse + yaml)

    add_dataclass_arguments(serve, LocalHubConfig, "limits (defaults follow the real Hub)")
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="manage access tokens",
                           description="Create, list and revoke users' access tokens for the local Hub.")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_sub.add_parser(
        "create", help="create a token (and the user if new); prints only the token",
        description="Create an access token for USER (created if missing) and print it. `read` tokens can "
        "read the user's private repos; `write` tokens can also write to the user's namespace and orgs. "
        "Only a hash is stored: the printed token cannot be shown again.",
    )
    create.add_argument("--data-dir", required=True, help="the server's storage folder")
    create.add_argument("--user", required=True, help="user name (letters, digits, - _ .)")
    create.add_argument("--role", required=True, choices=["read", "write"], help="token permission")
    create.add_argument("--org", action="append", metavar="ORG",
                        help="make USER a member of ORG (repeatable; the org is created if missing)")
    create.set_defaults(func=_token_create)

    listing = token_sub.add_parser(
        "list", help="list tokens (id, user, role, name, date; never the token)",
        description="List the tokens of the local Hub at DIR. Each is named by an ID (the first digits of its "
        "hash), which `revoke` takes; the tokens themselves are not stored and cannot be shown.",
    )
    listing.add_argument("--data-dir", required=True, help="the server's storage folder")
    listing.add_argument("--user", help="only the tokens of this user")
    listing.set_defaults(func=_token_list)
    revoke = token_sub.add_parser(
        "revoke", help="revoke a token by its ID (see `list`)",
        description="Delete the token with TOKEN_ID (as `rag-de hub token list` shows it); requests with it are "
        "refused from then on, also by a running server.",
    )
    revoke.add_argument("--data-dir", required=True, help="the server's storage folder")
    revoke.add_argument("token_id", metavar="TOKEN_ID", help="the token's ID from `rag-de hub token list`")
    revoke.set_defaults(func=_token_revoke)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m local_hub ...` (same commands, without the other packages)."""
    parser = argparse.ArgumentParser(prog="python -m local_hub")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(commands, None)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
