"""Texts and user vectors to the unit vectors the store and indexes hold."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from engramdb._types import FloatMatrix
from engramdb.embeddings import Embedder
from engramdb.errors import ValidationError
from engramdb.index.view import normalize_rows
from engramdb.records import utf8

__all__ = ["Vectorizer"]

_EMBED_BLOCK = 1024
"""Texts embedded between two progress-bar updates."""


class Vectorizer:
    """Embeds texts and checks given vectors, always returning unit rows."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> FloatMatrix:
        """Unit embeddings of ``texts`` (a progress bar over large batches if asked)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not progress or len(texts) <= _EMBED_BLOCK:
            return normalize_rows(self.embedder.embed(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with tqdm(total=len(texts), desc="embedding", unit="text") as bar:
            for i in range(0, len(texts), _EMBED_BLOCK):
                block = texts[i : i + _EMBED_BLOCK]
                out[i : i + len(block)] = self.embedder.embed(block)
                bar.update(len(block))
        return normalize_rows(out)

    def chunk_counts(self, texts: Sequence[str]) -> list[int]:
        """How many model windows each text spans (1 for embedders without windows)."""
        if not texts:
            return []  # nothing to tokenize (and no reason to load a model)
        counter = getattr(self.embedder, "chunk_counts", None)
        return list(counter(texts)) if callable(counter) else [1] * len(texts)

    def check(self, vector: object) -> FloatMatrix:
        """A user's vector as a float32 unit row, refused unless finite, non-zero, right size.

        Normalised in float64 after scaling by the largest component, so vectors of
        any finite size (1e20, 1e-30) keep their direction instead of overflowing
        or underflowing to zero in float32.
        """
        try:
            arr = np.asarray(vector, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise ValidationError(f"vector {vector!r:.60} is not a list of numbers") from None
        if arr.shape != (self.dim,):
            raise ValidationError(
                f"vector of dim {arr.size} does not match the store's {self.dim} "
                f"(embedder {self.embedder.name}); pass a vector of that size"
            )
        top = float(np.abs(arr).max())  # NaN if any is NaN, inf if any is infinite
        if not math.isfinite(top) or top == 0.0:
            raise ValidationError("vector has NaN, infinite or all-zero values; pass a real one")
        arr = arr / top
        unit: FloatMatrix = (arr / math.sqrt(arr @ arr)).astype(np.float32)
        return unit

    def query(self, query: object) -> FloatMatrix:
        """The unit vector of a recall query: text is embedded, a vector checked."""
        if isinstance(query, str):
            if not query.strip():
                raise ValidationError("query '' is empty; pass some text or a vector")
            utf8(query, what="query")
            vec: FloatMatrix = self.embed([query])[0]
        else:
            vec = normalize_rows(self.check(query)[None, :])[0]
        return vec
