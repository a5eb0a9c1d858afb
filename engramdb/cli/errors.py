"""One place that maps engramdb errors to exit codes and to messages in the CLI's terms.

Every command runs inside :func:`cli_errors` (the group's ``invoke`` wraps it, as
httpx's ``request_context`` wraps a transport), so no command has a try block of
its own for engine errors. Exit codes are stable; a subclass shares its parent's:

====  ===========================================================================
code  meaning
====  ===========================================================================
0     done
1     some of the work failed (``consolidate``: an agent failed), or an
      unexpected error
2     bad input or usage (``ValidationError``); nothing was written
3     no such store, agent, memory or checkpoint (``NotFoundError``)
4     another process holds the store's writer lock (``StoreLockedError``)
5     the store or snapshot was built by another embedder (``EmbedderMismatchError``)
6     a snapshot that cannot be read or trusted, or a missing or wrong key
      (``SnapshotError``, ``SnapshotIntegrityError``, ``SnapshotKeyError``)
7     the embedding model cannot be loaded offline (``EmbedderUnavailableError``)
8     store files from an unknown or newer format (``StoreFormatError``)
130   interrupted (Ctrl-C)
====  ===========================================================================

Engine messages are written for Python callers (``embedder='hashing-256'``,
``reembed=True``, ``engine.agents()``); :func:`cli_message` says the same in
flags and commands, from one table (:data:`API_TO_CLI`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from engramdb.errors import (
    EmbedderMismatchError,
    EmbedderUnavailableError,
    EngramError,
    NotFoundError,
    SnapshotError,
    StoreFormatError,
    StoreLockedError,
    ValidationError,
)

__all__ = [
    "API_TO_CLI",
    "EXIT_CODES",
    "FAILED",
    "INTERRUPTED",
    "cli_errors",
    "cli_message",
    "exit_code",
    "fail",
]

FAILED = 1
"""Part of the work failed (the rest was done), or an error engramdb did not expect."""
INTERRUPTED = 130
"""Ctrl-C, as shells report a process killed by SIGINT."""

EXIT_CODES: dict[type[EngramError], int] = {
    ValidationError: 2,
    NotFoundError: 3,
    StoreLockedError: 4,
    EmbedderMismatchError: 5,
    SnapshotError: 6,
    EmbedderUnavailableError: 7,
    StoreFormatError: 8,
}

API_TO_CLI: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # The engine's own "(CLI: ...)" asides become redundant once the advice is in flags.
        (r"\s*\(CLI: [^)]*\)", ""),
        (r"engine\.checkpoints\(agent=\.\.\.\)", "engramdb checkpoints --agent AGENT"),
        (r"see engine\.agents\(\)", "engramdb stats lists them"),
        (r"open it with embedder='([^']*)'", r"give -e \1 (or leave -e out: commands use the store's own embedder)"),  # noqa: E501
        (r"opened with embedder='([^']*)'", r"built with -e \1"),
        (r"embedder='([^']*)'", r"-e \1"),
        (r"reembed=True", "--reembed"),
        (r"mode='(\w+)'", r"--mode \1"),
        (r"agent='<new name>'|agent=\.\.\.", "--agent NEW_NAME"),
        (r"pass key=", "pass --key-file or --passphrase"),
        (r"pass a local model directory", "give the model's directory with -e DIR"),
        (r"\(model=None\)", "(-e minilm)"),
        (r"close that engine first, or open this one with read_only=True",
         "let that process finish, then run this command again"),
    )
)  # fmt: skip
"""Python-API phrases in engine messages and what they are on the command line."""


def exit_code(error: EngramError) -> int:
    """The process exit code for an engine error (:data:`FAILED` for anything unlisted)."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return FAILED


def cli_message(message: str) -> str:
    """An engine error message with its Python advice said in flags and commands.

    Example:
        >>> cli_message("pass reembed=True (CLI: --reembed) to embed its texts again")
        'pass --reembed to embed its texts again'
    """
    for pattern, replacement in API_TO_CLI:
        message = pattern.sub(replacement, message)
    return message


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and end the command with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn an engramdb error (or Ctrl-C) into a message on stderr and its exit code."""
    try:
        yield
    except EngramError as exc:
        fail(cli_message(str(exc)), exit_code(exc))
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED)
