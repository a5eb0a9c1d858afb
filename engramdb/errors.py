"""Errors raised by engramdb.

Every error derives from :class:`EngramError`; where an error shares the meaning
of a builtin it inherits that too, so ``except KeyError`` keeps working::

    EngramError
    ├── ValidationError (ValueError)         bad input; nothing was written
    ├── NotFoundError (KeyError)             no memory, agent or checkpoint by that name
    ├── StoreLockedError (RuntimeError)      another process holds the store's writer lock
    ├── ReadOnlyError (PermissionError)      a write on a store opened read-only
    ├── StoreClosedError (RuntimeError)      an operation on a closed engine
    ├── EmbedderMismatchError (ValueError)   the store or snapshot was built by another embedder
    ├── EmbedderUnavailableError (RuntimeError)  a model could not be loaded offline
    ├── StoreFormatError (RuntimeError)      store files from an unknown or newer format
    │   └── StoreCorruptError                store files missing or damaged: restore a snapshot
    ├── StoreIOError (OSError)               the file system refused: read-only, disk full
    └── SnapshotError (ValueError)           a snapshot file that cannot be trusted or read
        ├── SnapshotIntegrityError           a hash does not match: corrupted or tampered
        └── SnapshotKeyError                 missing or wrong decryption key
"""

from __future__ import annotations

__all__ = [
    "EmbedderMismatchError",
    "EmbedderUnavailableError",
    "EngramError",
    "NotFoundError",
    "ReadOnlyError",
    "SnapshotError",
    "SnapshotIntegrityError",
    "SnapshotKeyError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreFormatError",
    "StoreIOError",
    "StoreLockedError",
    "ValidationError",
]


class EngramError(Exception):
    """Root of every error engramdb raises on purpose."""


class ValidationError(EngramError, ValueError):
    """Input that breaks a rule; raised before anything is written."""


class NotFoundError(EngramError, KeyError):
    """A memory, agent or checkpoint that does not exist."""

    def __str__(self) -> str:
        # KeyError quotes its argument; an error message should read as prose.
        return str(self.args[0]) if self.args else ""


class StoreLockedError(EngramError, RuntimeError):
    """Another process holds the store's writer lock."""


class ReadOnlyError(EngramError, PermissionError):
    """A write was attempted on an engine opened with ``read_only=True``."""


class StoreClosedError(EngramError, RuntimeError):
    """An operation on an engine after :meth:`MemoryEngine.close`."""


class EmbedderMismatchError(EngramError, ValueError):
    """The store or snapshot was built by a different embedder than the one given."""


class EmbedderUnavailableError(EngramError, RuntimeError):
    """An embedding model could not be loaded (offline, missing files, bad path)."""


class StoreFormatError(EngramError, RuntimeError):
    """Store files written by an unknown or newer version of engramdb."""


class StoreCorruptError(StoreFormatError):
    """Store files that are missing or damaged: the table, its versions, data or metadata file.

    The store cannot be trusted as it is; the message names what is missing and
    how to recover (restore from a snapshot, or put back the file named).
    """


class StoreIOError(EngramError, OSError):
    """The file system refused a read or write under the store.

    A read-only mount, a full disk, missing permissions, or a path that runs
    through a file. The original ``OSError`` or LanceDB error is chained.
    """


class SnapshotError(EngramError, ValueError):
    """A snapshot file that cannot be read or trusted."""


class SnapshotIntegrityError(SnapshotError):
    """A snapshot whose hashes do not match its contents."""


class SnapshotKeyError(SnapshotError):
    """A snapshot that needs a key that was not given, or was given the wrong one."""
