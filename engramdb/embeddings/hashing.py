"""A deterministic, model-free embedder: signed feature hashing of words and word pairs."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.errors import ValidationError

__all__ = ["HashingEmbedder"]

_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature-hashing embedder: the same text gives the same unit vector on every machine.

    Each lower-cased word and each pair of adjacent words is hashed (BLAKE2b)
    to a coordinate and a sign. Texts that share words get similar vectors, so
    it behaves sensibly in tests and as a cheap lexical embedder; it needs no
    model and no download.

    Args:
        dim: Vector dimension (8 to 8192).
    """

    normalized = True

    def __init__(self, dim: int = 256) -> None:
        if not isinstance(dim, int) or not 8 <= dim <= 8192:
            raise ValidationError(f"hashing dim {dim!r} is out of range; use 8 to 8192")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            feats = self._features(text) or [text]
            for feat in feats:
                digest = hashlib.blake2b(feat.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                weight = 1.0 if " " not in feat else 0.5
                out[row, value % self.dim] += weight if (value >> 63) & 1 else -weight
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            else:  # every feature cancelled out: fall back to a fixed axis, still unit length
                out[row, 0] = 1.0
        return out
