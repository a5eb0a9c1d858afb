"""One place that maps engine errors to exit codes (and, later, HTTP statuses)."""

from __future__ import annotations

from engramdb.errors import (
    EmbedderMismatchError,
    EngramError,
    NotFoundError,
    SnapshotError,
    StoreLockedError,
    ValidationError,
)

__all__ = ["EXIT_CODES", "exit_code"]

EXIT_CODES: dict[type[EngramError], int] = {
    ValidationError: 2,
    NotFoundError: 3,
    StoreLockedError: 4,
    EmbedderMismatchError: 5,
    SnapshotError: 6,
}


def exit_code(error: EngramError) -> int:
    """The process exit code for an engine error (1 for anything unlisted)."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1
