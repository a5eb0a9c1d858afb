"""Embedders: the protocol, the bundled sentence-transformers default, and a hashing embedder."""

from __future__ import annotations

from pathlib import Path

from engramdb.embeddings.base import CachedEmbedder, Embedder, EmbedderInfo
from engramdb.embeddings.deferred import DeferredEmbedder
from engramdb.embeddings.hashing import HashingEmbedder
from engramdb.embeddings.sentence import (
    DEFAULT_MODEL_NAME,
    SentenceTransformerEmbedder,
    bundled_model_path,
)
from engramdb.errors import ValidationError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "CachedEmbedder",
    "DeferredEmbedder",
    "Embedder",
    "EmbedderInfo",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "bundled_model_path",
    "resolve_embedder",
]


def resolve_embedder(spec: str | Path | Embedder, *, threads: int | None = None) -> Embedder:
    """Turn what a user passes as ``embedder=`` into an embedder.

    Args:
        spec: ``"minilm"`` (the bundled all-MiniLM-L6-v2), ``"hashing"`` or
            ``"hashing-<dim>"``, any sentence-transformers model name or local
            path, or an object that follows the :class:`Embedder` protocol.
        threads: Torch threads for a sentence-transformers model.
    """
    if isinstance(spec, str | Path):
        text = str(spec)
        if text in ("minilm", DEFAULT_MODEL_NAME):
            return SentenceTransformerEmbedder(threads=threads)
        if text == "hashing":
            return HashingEmbedder()
        if text.startswith("hashing-") and text[8:].isdigit():
            return HashingEmbedder(int(text[8:]))
        if not text.strip():
            raise ValidationError("embedder '' is empty; use 'minilm', 'hashing' or a model name")
        return SentenceTransformerEmbedder(text, threads=threads)
    for attr in ("name", "dim", "normalized", "embed"):
        if not hasattr(spec, attr):
            raise ValidationError(
                f"embedder {spec!r} lacks {attr!r}; pass 'minilm', 'hashing', a model name, "
                "or an object with name, dim, normalized and embed(texts)"
            )
    return spec
