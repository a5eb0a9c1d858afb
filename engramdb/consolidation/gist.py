"""Extractive gists: a cluster told by its medoid and the few members that cover the rest.

No model beyond the vectors already stored. The medoid (the member most similar
to all the others) leads; then members are added greedily by how much coverage
they add (facility location: the sum over members of the best similarity to a
quoted one) until every member is within ``cover`` of a quoted one or
``max_sentences`` are quoted. Members are usually one utterance each, so a
quoted member is a sentence of the gist; texts equal after normalization are
quoted once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.consolidation.text import distinct_texts
from engramdb.errors import ValidationError

__all__ = ["GIST_SEPARATOR", "Gist", "extractive_gist", "medoid"]

GIST_SEPARATOR = "\n"


@dataclass(frozen=True)
class Gist:
    """An extractive gist: its text, the medoid and the quoted members (indices)."""

    text: str
    medoid: int
    quoted: tuple[int, ...]


def medoid(vectors: FloatMatrix) -> int:
    """Index of the row with the largest total similarity to the others (first on ties)."""
    sims = vectors @ vectors.T
    return int(np.argmax(sims.sum(axis=1)))


def extractive_gist(
    texts: Sequence[str],
    vectors: FloatMatrix,
    *,
    max_sentences: int = 4,
    cover: float = 0.8,
    max_bytes: int | None = None,
) -> Gist:
    """The gist of a cluster.

    Args:
        texts: Member texts (e.g. oldest first: quoted members keep this order after the medoid).
        vectors: Their unit vectors.
        max_sentences: Most members quoted.
        cover: Similarity at which a quoted member covers another.
        max_bytes: Longest gist text in UTF-8 bytes (later quotes are dropped to fit).
    """
    if not texts:
        raise ValidationError("a gist needs at least one member; pass a non-empty group")
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    sims = (v @ v.T).astype(np.float64)
    centre = int(np.argmax(sims.sum(axis=1)))
    quoted = [centre]
    best = sims[:, centre].copy()
    while len(quoted) < max_sentences and best.min() < cover:
        gain = np.maximum(sims, best[:, None]).sum(axis=0) - best.sum()
        gain[quoted] = -np.inf
        pick = int(np.argmax(gain))
        if not gain[pick] > 0:
            break
        quoted.append(pick)
        best = np.maximum(best, sims[:, pick])
    ordered = [centre, *sorted(quoted[1:])]
    parts = distinct_texts([texts[i] for i in ordered])
    text = GIST_SEPARATOR.join(parts)
    if max_bytes is not None:
        while len(parts) > 1 and len(text.encode("utf-8")) > max_bytes:
            parts.pop()
            text = GIST_SEPARATOR.join(parts)
        if len(text.encode("utf-8")) > max_bytes:
            text = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return Gist(text=text, medoid=centre, quoted=tuple(ordered))
