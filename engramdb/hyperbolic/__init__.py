"""Hyperbolic geometry for hierarchies: Poincaré-ball maths, training, metrics, k-NN.

Points live in the Poincaré ball of curvature ``-c`` (radius ``1/sqrt(c)``);
every maths function takes ``c`` explicitly.

The names below load on first use (PEP 562): the k-NN indexes need only numpy
and FAISS, while the ball's maths and training import torch and geoopt, which a
cosine store never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engramdb._lazy import lazy_names

if TYPE_CHECKING:
    from engramdb.hyperbolic.ball import (
        boundary_margin,
        distance,
        expmap0,
        from_hyperboloid,
        logmap0,
        pairwise_distance,
        project,
        to_hyperboloid,
    )
    from engramdb.hyperbolic.index import PoincareFlatIndex, PoincareHNSWIndex, SearchResult
    from engramdb.hyperbolic.metrics import reconstruction_metrics
    from engramdb.hyperbolic.train import fit_euclidean, fit_poincare

__all__ = [
    "PoincareFlatIndex",
    "PoincareHNSWIndex",
    "SearchResult",
    "boundary_margin",
    "distance",
    "expmap0",
    "fit_euclidean",
    "fit_poincare",
    "from_hyperboloid",
    "logmap0",
    "pairwise_distance",
    "project",
    "reconstruction_metrics",
    "to_hyperboloid",
]

_HOMES = {
    **dict.fromkeys(
        (
            "boundary_margin",
            "distance",
            "expmap0",
            "from_hyperboloid",
            "logmap0",
            "pairwise_distance",
            "project",
            "to_hyperboloid",
        ),
        "engramdb.hyperbolic.ball",
    ),
    **dict.fromkeys(
        ("PoincareFlatIndex", "PoincareHNSWIndex", "SearchResult"), "engramdb.hyperbolic.index"
    ),
    "reconstruction_metrics": "engramdb.hyperbolic.metrics",
    "fit_euclidean": "engramdb.hyperbolic.train",
    "fit_poincare": "engramdb.hyperbolic.train",
}


__getattr__, __dir__ = lazy_names("engramdb.hyperbolic", _HOMES, globals(), __all__)
