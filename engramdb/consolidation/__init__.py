"""Consolidation's algorithms: policy, duplicate groups, topic clusters, gists, retention.

Pure functions over arrays and plain values; the pass that applies them to a
store is :mod:`engramdb.consolidation.run` (``engine.consolidate()``).
"""

from engramdb.consolidation.cluster import topic_clusters
from engramdb.consolidation.dedup import duplicate_groups, merge_metadata
from engramdb.consolidation.gist import Gist, extractive_gist, medoid
from engramdb.consolidation.graph import Graph, similarity_graph
from engramdb.consolidation.policy import (
    DEFAULT_CLUSTER_THRESHOLD,
    DEFAULT_DUPLICATE_THRESHOLD,
    ClusterPolicy,
    ConsolidationPolicy,
    DedupPolicy,
    ExpirePolicy,
    ForgetPolicy,
    Summarizer,
)
from engramdb.consolidation.report import AgentReport, ConsolidationReport, ProgressEvent
from engramdb.consolidation.retention import half_life_days, retention
from engramdb.consolidation.text import informativeness, normalize_text, text_features, text_key

__all__ = [
    "DEFAULT_CLUSTER_THRESHOLD",
    "DEFAULT_DUPLICATE_THRESHOLD",
    "AgentReport",
    "ClusterPolicy",
    "ConsolidationPolicy",
    "ConsolidationReport",
    "DedupPolicy",
    "ExpirePolicy",
    "ForgetPolicy",
    "Gist",
    "Graph",
    "ProgressEvent",
    "Summarizer",
    "duplicate_groups",
    "extractive_gist",
    "half_life_days",
    "informativeness",
    "medoid",
    "merge_metadata",
    "normalize_text",
    "retention",
    "similarity_graph",
    "text_features",
    "text_key",
    "topic_clusters",
]
