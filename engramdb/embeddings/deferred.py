"""An embedder known by what a store recorded of it, loaded only when asked to embed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from engramdb._types import FloatMatrix
from engramdb.embeddings.base import Embedder, EmbedderInfo
from engramdb.errors import EmbedderMismatchError

__all__ = ["DeferredEmbedder"]


class DeferredEmbedder:
    """Stands in for a store's embedder until something needs a vector.

    ``name``, ``dim`` and ``normalized`` come from the store's metadata, so a
    command that embeds nothing (counts, exports, checkpoints) never loads the
    model, and works even when the model is no longer at hand. The first
    ``embed`` (or any model-specific attribute) calls ``load`` and checks the
    loaded embedder against the record.

    Args:
        info: What the store recorded: (name, dim, normalized).
        load: Makes the real embedder, e.g. ``lambda: resolve_embedder(name)``.

    Example:
        >>> from engramdb.embeddings import HashingEmbedder
        >>> emb = DeferredEmbedder(EmbedderInfo("hashing-8", 8, True), lambda: HashingEmbedder(8))
        >>> emb.dim, emb.loaded
        (8, False)
        >>> emb.embed(["hello"]).shape, emb.loaded
        ((1, 8), True)
    """

    def __init__(self, info: EmbedderInfo, load: Callable[[], Embedder]) -> None:
        self.info = info
        self._load = load
        self._inner: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.info[0]

    @property
    def dim(self) -> int:
        return self.info[1]

    @property
    def normalized(self) -> bool:
        return self.info[2]

    @property
    def loaded(self) -> bool:
        """Whether the real embedder has been made."""
        return self._inner is not None

    @property
    def inner(self) -> Embedder:
        """The real embedder (made on first use).

        Raises:
            EmbedderMismatchError: it is not the embedder the store recorded.
        """
        with self._lock:
            if self._inner is None:
                made = self._load()
                if EmbedderInfo.of(made) != self.info:
                    raise EmbedderMismatchError(
                        f"the embedder loaded as {self.info[0]!r} is {EmbedderInfo.of(made)}, "
                        f"but the store was built with {self.info}; give the model it was built "
                        "with (a name or a local path)"
                    )
                self._inner = made
            return self._inner

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        return self.inner.embed(texts)

    def __getattr__(self, item: str) -> object:
        # Model-specific extras (chunk counts) load the model; private names never do.
        if item.startswith("_"):
            raise AttributeError(item)
        return getattr(self.inner, item)
