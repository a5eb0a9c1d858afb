"""Fusing lexical and dense evidence into one relevance per candidate (pure functions).

The method is a normalised convex combination (Bruch et al., "An Analysis of
Fusion Functions for Hybrid Retrieval"): each side's scores are scaled min-max
over that side's own candidate pool, clipped at 0, then weighted and summed. A
candidate found by one side only gets 0 from the other. Reciprocal-rank fusion
was measured below BM25 alone on conversational memory, and is not offered.
"""

from __future__ import annotations

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


def session_prior(dense: np.ndarray, lexical: np.ndarray, weights: HybridWeights) -> np.ndarray:
    """A prior per session from its best dense match and its session document's BM25.

    ``dense`` and ``lexical`` are aligned, one value per session. Both are min-max
    scaled over the sessions given; a session with no lexical match (0) scores 0
    on that side.
    """
    if not len(dense):
        return np.zeros(0, np.float64)
    dense = np.asarray(dense, np.float64)
    lex = np.asarray(lexical, np.float64)
    d = minmax(dense, dense)
    matched = lex[lex > 0]
    lx = minmax(lex, matched) * (lex > 0)
    prior: np.ndarray = weights.prior_dense * d + (1.0 - weights.prior_dense) * lx
    return prior
