"""One error format for every `rag-de` subcommand: `rag-de <command>: error: <what>, <where>, <fix>`.

argparse already prints usage errors as `rag-de <command>: error: ...` with exit status 2; bad input found
while a command runs (a config key, a missing file, a dataset without the needed columns) is printed the
same way through `report`, so a user (or a script) reads every failure alike. Only the standard library
loads here: every part may import it.
"""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2   # argparse's status for usage errors


class UserError(ValueError):
    """Bad input (config, file, dataset, model id): the message says what is wrong, where, and the fix.

    The part-specific errors (`ConfigError`, `EvalInputError`, the builder's `InputError`, ...) derive
    from it, so `rag-de` reports any of them in the one format instead of a traceback.
    """


def format_error(command: str, error: BaseException | str) -> str:
    return f"rag-de {command}: error: {error}"


def report(command: str, error: BaseException | str) -> int:
    """Print the error line for `command` (e.g. "train", "card dataset") to stderr; returns the exit status."""
    print(format_error(command, error), file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT
