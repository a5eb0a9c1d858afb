"""A growable numpy column: the storage every in-memory index keeps by label."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["Column", "release_free_memory"]


def _libc_trim() -> Callable[[int], object] | None:
    name = ctypes.util.find_library("c")
    try:
        fn: Callable[[int], object] | None = getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None
    return fn if name else None


_MALLOC_TRIM = _libc_trim()


def release_free_memory() -> None:
    """Hand memory freed by a bulk build back to the operating system.

    Building an agent's view reads the whole agent from the store (Arrow
    buffers) and makes a Python value per memory on the way, all freed once the
    columns are built; Arrow's pool and the C heap keep such memory for reuse,
    which at 100,000 memories is more than the view itself. This releases both
    (``malloc_trim`` where the C library is glibc; nothing elsewhere).
    """
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class Column:
    """A numpy array that grows by doubling; :attr:`view` is its filled part.

    Args:
        dtype: The element type.
        capacity: The first allocation.
    """

    def __init__(self, dtype: type | np.dtype[Any], capacity: int = 64) -> None:
        self.data: np.ndarray = np.empty(capacity, dtype=dtype)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def extend(self, values: np.ndarray) -> None:
        """Append ``values``."""
        need = self.n + len(values)
        if need > len(self.data):
            grown = np.empty(max(need, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : need] = values
        self.n = need

    def trim(self) -> None:
        """Drop the spare capacity (after a bulk build: up to half the column)."""
        if len(self.data) > self.n:
            self.data = self.data[: self.n].copy()

    @property
    def view(self) -> np.ndarray:
        """The filled part (a view, not a copy)."""
        return self.data[: self.n]
