"""A growable numpy column: the storage every in-memory index keeps by label."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Column"]


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
