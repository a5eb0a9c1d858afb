"""Fusing lexical and dense evidence into one relevance per candidate (pure functions).

The method is a normalised convex combination (Bruch et al., "An Analysis of
Fusion Functions for Hybrid Retrieval"): each side's scores are scaled min-max
over that side's own candidate pool, clipped at 0, then weighted and summed. A
candidate found by one side only gets 0 from the other. Reciprocal-rank fusion
was measured below BM25 alone on conversational memory, and is not offered.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engramdb.config import HybridWeights

__all__ = ["minmax", "session_prior"]

_FLAT = 1e-6
"""Score ranges at most this wide count as flat (the scores are rounded to 6 decimals)."""


def minmax(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``values`` scaled so the pool's range maps to [0, 1], clipped to [0, 1].

    A pool of one value (or of values equal to 6 decimals) maps that value to 1:
    it is the best the side found. An empty pool maps everything to 0.
    """
    if not len(pool):
        return np.zeros(len(values), np.float64)
    lo, hi = float(np.min(pool)), float(np.max(pool))
    if hi - lo <= _FLAT:
        # A range this narrow is rounding noise (scores equal in exact arithmetic
        # come out of float32 a few ulps apart): scaling it would blow the noise
        # up to the whole [0, 1] and make the order depend on it.
        return (values >= lo - _FLAT).astype(np.float64)
    return np.clip((values.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)


def session_prior(
    best_dense: Mapping[int, float], lexical: Mapping[int, float], weights: HybridWeights
) -> dict[int, float]:
    """A prior per session code from its best dense match and its session document's BM25.

    Both are min-max scaled over the sessions given; a session with no lexical
    match scores 0 on that side.
    """
    codes = sorted(best_dense)
    if not codes:
        return {}
    dense = np.array([best_dense[c] for c in codes])
    lex = np.array([lexical.get(c, 0.0) for c in codes])
    d = minmax(dense, dense)
    matched = lex[lex > 0]
    lx = minmax(lex, matched) * (lex > 0)
    prior = weights.prior_dense * d + (1.0 - weights.prior_dense) * lx
    return {c: float(p) for c, p in zip(codes, prior, strict=True)}
