"""The store's writer lock: one writer process per store.

An advisory ``flock`` on ``<store>/.lock``. The kernel drops it when the
holder dies, however it dies, so a killed writer never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from engramdb.errors import StoreLockedError

__all__ = ["WriterLock"]


class WriterLock:
    """Hold the writer lock of the store at ``root`` until :meth:`release`."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            self._fd = None
            raise StoreLockedError(
                f"store {root} is open for writing in another process (pid {holder}); close "
                "that engine first, or open this one with read_only=True"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
