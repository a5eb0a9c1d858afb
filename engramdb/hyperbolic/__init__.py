"""Hyperbolic geometry for hierarchies: Poincaré-ball maths, training, metrics, k-NN.

Points live in the Poincaré ball of curvature ``-c`` (radius ``1/sqrt(c)``);
every maths function takes ``c`` explicitly.
"""

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
