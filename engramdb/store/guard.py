"""The store's error boundary: LanceDB and OS errors become engramdb errors.

Every call into LanceDB or the file system under a store goes through
:func:`store_errors` (methods of :class:`~engramdb.store.table.MemoryTable` through
the :func:`guarded` decorator), so a caller sees :class:`~engramdb.errors.StoreIOError`
when the file system refused (read-only, full disk, permissions) and
:class:`~engramdb.errors.StoreCorruptError` when the store's files are missing or
damaged, each naming the path and the operation, with the original chained.
"""

from __future__ import annotations

import errno
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, Protocol, TypeVar

from engramdb.errors import (
    EngramError,
    ReadOnlyError,
    StoreCorruptError,
    StoreIOError,
    ValidationError,
)
from engramdb.store.location import StoreLocation

__all__ = ["check_store_path", "guarded", "store_errors"]

_IO_ERRNOS = {
    errno.ENOSPC: "the disk is full; free space, then retry",
    errno.EDQUOT: "the disk quota is exhausted; free space, then retry",
    errno.EROFS: "the file system is read-only; open the store with read_only=True or move it",
    errno.EACCES: "permission denied; check the owner and mode of the store's files",
    errno.EPERM: "permission denied; check the owner and mode of the store's files",
    errno.ENOTDIR: "a part of the path is a file; give a directory path",
    errno.EISDIR: "a file was expected where there is a directory",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
}
# LanceDB reports file-system failures as RuntimeError or OSError text from Rust.
_IO_TEXT = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "read-only file system": errno.EROFS,
    "permission denied": errno.EACCES,
    "not a directory": errno.ENOTDIR,
    "too many open files": errno.EMFILE,
}
_RECOVER = (
    "restore the agents from snapshots into a new store (engramdb import), or put back the "
    "missing files from a backup"
)


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno in _IO_ERRNOS:
        return exc.errno
    text = str(exc).lower()
    for needle, code in _IO_TEXT.items():
        if needle in text:
            return code
    return None


@contextmanager
def store_errors(root: Path | StoreLocation, operation: str) -> Iterator[None]:
    """Turn LanceDB and OS errors raised inside into engramdb errors about ``root``.

    Engramdb errors pass through untouched. An error the file system raised (or
    LanceDB passed on) becomes :class:`StoreIOError` with a hint for its errno;
    anything else LanceDB raises means its files could not be read as a table,
    and becomes :class:`StoreCorruptError`. A remote store's credentials are
    taken out of the message.
    """
    redact = root.redact if isinstance(root, StoreLocation) else str
    try:
        yield
    except EngramError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        code = _errno_of(exc)
        if code is not None or isinstance(exc, OSError):
            hint = _IO_ERRNOS.get(code or -1, "check the path, its permissions and free space")
            raise StoreIOError(
                code or getattr(exc, "errno", None) or errno.EIO,
                f"cannot {operation} in store {root}: {redact(_short(exc))}; {hint}",
            ) from exc
        raise StoreCorruptError(
            f"cannot {operation} in store {root}: LanceDB failed with {type(exc).__name__}: "
            f"{redact(_short(exc))}; the store's files are damaged or incomplete; {_RECOVER}"
        ) from exc


def _short(exc: BaseException) -> str:
    """The first line of an error, capped: Rust errors carry long source paths."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line if len(line) <= 300 else line[:297] + "..."


class _HasRoot(Protocol):
    root: StoreLocation
    read_only: bool
    fence: Callable[[], None] | None
    write_lock: threading.RLock

    def refresh(self) -> None: ...


S = TypeVar("S", bound=_HasRoot)
R = TypeVar("R")


def guarded(
    operation: str, *, write: bool = False
) -> Callable[[Callable[Concatenate[S, ...], R]], Callable[Concatenate[S, ...], R]]:
    """Run a store method inside :func:`store_errors` for its ``root``.

    With ``write``, the method is refused on a read-only store: a reader never
    writes, compacts or purges anything; it holds the store's ``write_lock``, so
    writes from several threads (the engine's, the access-count flusher's) commit
    one at a time, and the store's ``fence`` (the writer lease's check on object
    storage) runs first. A reader's failed read is tried once more at the newest
    version before it is reported as damage.
    """

    def wrap(fn: Callable[Concatenate[S, ...], R]) -> Callable[Concatenate[S, ...], R]:
        @functools.wraps(fn)
        def run(self: S, /, *args: object, **kwargs: object) -> R:
            if write and self.read_only:
                raise ReadOnlyError(
                    f"store {self.root} is open read-only; cannot {operation}: open it "
                    "without read_only=True to write"
                )
            if write:
                with self.write_lock:
                    if self.fence is not None:
                        self.fence()
                    with store_errors(self.root, operation):
                        return fn(self, *args, **kwargs)
            try:
                with store_errors(self.root, operation):
                    return fn(self, *args, **kwargs)
            except StoreCorruptError:
                if write or not self.read_only:
                    raise
                # A reader's version can be cleaned up under it by the writer (after
                # the retention); once more at the newest version tells that from damage.
                self.refresh()
                with store_errors(self.root, operation):
                    return fn(self, *args, **kwargs)

        return run

    return wrap


def check_store_path(root: Path) -> Path:
    """Validate a store path before anything is created on disk.

    Raises:
        ValidationError: the path has control characters (LanceDB cannot open
            such a path), or it is a file.
        StoreIOError: a part of it is a file, so no directory can be made there.
    """
    text = str(root)
    bad = sorted({c for c in text if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ValidationError(
            f"store path {text!r} contains control characters {bad!r}, which LanceDB cannot "
            "open; choose a path without them"
        )
    if root.exists() and not root.is_dir():
        raise ValidationError(f"store path {text!r} is a file; give a directory")
    parent = root.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StoreIOError(
            errno.ENOTDIR,
            f"cannot create store {text!r}: {str(parent)!r} is a file, not a directory; "
            "give a path whose parents are directories",
        )
    return root
