"""Settings: one pydantic-settings model, read from ``ENGRAMDB_*`` environment variables.

Every default is a named constant so code and docs refer to the same number.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from engramdb._validation import CheckedSettings

__all__ = [
    "DEFAULT_EXACT_THRESHOLD",
    "DEFAULT_LEASE_TTL_SECONDS",
    "DEFAULT_MAX_CLOCK_SKEW_SECONDS",
    "DEFAULT_MAX_METADATA_BYTES",
    "DEFAULT_MAX_TEXT_BYTES",
    "DEFAULT_RECALL_TARGET",
    "DEFAULT_REMOTE_FOLLOW_SECONDS",
    "DEFAULT_VERSION_RETENTION_SECONDS",
    "DEFAULT_VIEW_CACHE_BYTES",
    "DEFAULT_WORKING_CAPACITY",
    "DEFAULT_WORKING_TTL_SECONDS",
    "HybridWeights",
    "ScoringWeights",
    "Settings",
    "default_store_path",
]

DEFAULT_MAX_TEXT_BYTES = 64 * 1024
DEFAULT_MAX_METADATA_BYTES = 16 * 1024
DEFAULT_WORKING_CAPACITY = 32
DEFAULT_WORKING_TTL_SECONDS = 3600.0
DEFAULT_EXACT_THRESHOLD = 20_000
"""Below this many memories an agent's index is exact (flat); above it, HNSW."""
DEFAULT_COMPACT_EVERY = 64
"""Commits between two automatic LanceDB compactions."""
DEFAULT_ACCESS_FLUSH_EVERY = 512
"""Buffered recall accesses that trigger one batched write."""
DEFAULT_VERSION_RETENTION_SECONDS = 10.0
"""How long compaction keeps superseded LanceDB versions (a reader's read must fit in it)."""
DEFAULT_RECALL_TARGET = 0.95
"""Recall@10 against exact search that an approximate index tunes itself to keep."""
DEFAULT_VIEW_CACHE_BYTES = 2 * 2**30
"""Memory the agent views of one engine may take before the least recently used go."""
DEFAULT_MAX_CLOCK_SKEW_SECONDS = 300.0
"""How far into the future a ``created_at`` may lie (clocks of writers disagree a little)."""
DEFAULT_LEASE_TTL_SECONDS = 30.0
"""How long a writer's lease on an object-storage store lives unless renewed (every third)."""
DEFAULT_REMOTE_FOLLOW_SECONDS = 1.0
"""How often a reader of an object-storage store looks for new commits (a local reader
looks on every call: a local look is a directory listing, a remote one a request)."""


class ScoringWeights(CheckedSettings):
    """How recall blends similarity with recency, importance and use.

    ``score = similarity + recency * 0.5**(age / half_life) + importance * imp
    + access * (1 - exp(-count / access_scale))``. The defaults keep similarity
    in charge: the other parts together move a score by at most 0.05, about the
    gap between neighbouring ranks of a sentence-embedding model, so they break
    near-ties rather than override relevance. Raise them for agents whose
    questions are mostly about the recent past.
    """

    model_config = SettingsConfigDict(env_prefix="ENGRAMDB_WEIGHT_", frozen=True)

    similarity: float = Field(1.0, ge=0.0)
    recency: float = Field(0.02, ge=0.0)
    importance: float = Field(0.02, ge=0.0)
    access: float = Field(0.01, ge=0.0)
    half_life_days: float = Field(30.0, gt=0.0)
    access_scale: float = Field(5.0, gt=0.0)


class HybridWeights(CheckedSettings):
    """How hybrid recall fuses lexical (BM25) and dense (cosine) evidence.

    Each side's candidates (the best ``pool`` of each, more when ``k`` asks) are
    normalised min-max over that side's own pool, clipped at 0, and fused as
    ``dense * dense_norm + lexical * lexical_norm`` (a convex combination, which
    Bruch et al. found to beat reciprocal-rank fusion). A memory's session adds
    ``session_prior * prior``, where the prior mixes (min-max over the agent's
    candidate sessions) the session's best dense score and its session
    document's BM25, ``prior_dense`` to ``1 - prior_dense``. With
    ``group_by="session"`` the pools are at least ``group_pool`` deep, and a
    session scores a soft maximum of its best ``group_top`` fused memories,
    ``group_temperature * log(sum(exp(fused / group_temperature)))``, plus
    ``group_prior * prior``: its best memory counts most, and each further good
    memory adds a little (a mean of the best few penalised sessions holding one
    strong match; the maximum alone ignored the others).

    A query that names a date ("on 16 November 2023", "in August 2023") adds
    ``date * preference`` to each candidate's fused score, where the preference is
    1 for a memory created within the named day, month or year and falls off as
    ``exp(-days / date_scale_days)`` outside it (:mod:`engramdb.engine.when`).

    The defaults were chosen on the LoCoMo development conversations by
    leave-one-conversation-out selection (``benchmarks/locomo.py``, README).
    """

    model_config = SettingsConfigDict(env_prefix="ENGRAMDB_HYBRID_", frozen=True)

    dense: float = Field(0.4, ge=0.0)
    lexical: float = Field(0.6, ge=0.0)
    context: float = Field(0.5, ge=0.0)
    """BM25 weight of a memory's context (its own text weighs 1)."""
    session_prior: float = Field(0.4, ge=0.0)
    prior_dense: float = Field(0.25, ge=0.0, le=1.0)
    date: float = Field(0.5, ge=0.0)
    """Weight of the time preference a date named in the query gives (0 turns it off).

    Not the folds' pick: they gained up to 0.8 (a near filter on LoCoMo, whose dated
    questions name the session's day); 0.5 stays below ``lexical`` so a date never
    outweighs full word evidence."""
    date_scale_days: float = Field(3.0, gt=0.0)
    group_prior: float = Field(0.5, ge=0.0)
    group_top: int = Field(5, ge=1)
    group_temperature: float = Field(0.1, gt=0.0)
    group_pool: int = Field(1000, ge=1)
    """Candidates per side for ``group_by="session"``: enough to see several memories of
    every session of a long conversation."""
    pool: int = Field(100, ge=1)


class Settings(CheckedSettings):
    """Engine settings; any field can be set as ``ENGRAMDB_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ENGRAMDB_", frozen=True)

    home: Path | None = None
    """Where ``MemoryEngine.open(None)`` puts its store (default: the platform data dir)."""
    max_text_bytes: int = Field(DEFAULT_MAX_TEXT_BYTES, gt=0)
    max_metadata_bytes: int = Field(DEFAULT_MAX_METADATA_BYTES, gt=0)
    working_capacity: int = Field(DEFAULT_WORKING_CAPACITY, gt=0)
    working_ttl_seconds: float = Field(DEFAULT_WORKING_TTL_SECONDS, gt=0)
    exact_threshold: int = Field(DEFAULT_EXACT_THRESHOLD, gt=0)
    recall_target: float = Field(DEFAULT_RECALL_TARGET, gt=0.0, le=1.0)
    """Recall@10 against exact search that an agent's approximate index keeps: HNSW
    (``index="auto"`` past ``exact_threshold``, or ``"hnsw"``) tunes its search beam,
    IVF its probes, on the agent's own vectors when built and each time it doubles.
    ``engine.stats()`` reports each agent's estimate and the breadth chosen."""
    view_cache_bytes: int = Field(DEFAULT_VIEW_CACHE_BYTES, gt=0)
    """Memory budget of the agent views held at once (vectors, index, columns, lexical
    index, records, as each view estimates them); past it the least recently used
    views are dropped and rebuilt on next use, from the index cache when it is fresh.
    The view in use always stays, even alone over the budget."""
    index_cache: bool = True
    """Keep each agent's HNSW graph in a file beside the store, checked against the
    store's version when loaded (a stale or damaged file is caught up or rebuilt)."""
    index_cache_dir: Path | None = None
    """Where the index cache lives (default: ``<store>/index-cache``)."""
    compact_every: int = Field(DEFAULT_COMPACT_EVERY, gt=0)
    access_flush_every: int = Field(DEFAULT_ACCESS_FLUSH_EVERY, gt=0)
    access_flush_interval: float = Field(1.0, ge=0.0)
    """Seconds at least between two background writes of access counts: a busy engine
    writes them about once a second, so few recalls share the machine with a write."""
    access_flush_idle: float = Field(0.02, ge=0.0)
    """Seconds with no recall running that a background write of access counts waits
    for (0: no wait). A recall beside a write runs several times slower (they share
    the interpreter lock), so writes go between bursts of recall; a buffer half full
    is written without waiting (a full one would drop counts)."""
    access_flush_max_wait: float = Field(5.0, ge=0.0)
    """The longest a background write waits for such a pause: under unbroken load the
    counts still go out this often (a killed process loses at most these seconds')."""
    version_retention: timedelta = Field(
        timedelta(seconds=DEFAULT_VERSION_RETENTION_SECONDS), ge=timedelta(0)
    )
    """How long compaction keeps superseded versions. A reader in another process that
    holds one version for longer (a very long export) can then fail and should retry."""
    max_clock_skew: timedelta = Field(
        timedelta(seconds=DEFAULT_MAX_CLOCK_SKEW_SECONDS), ge=timedelta(0), le=timedelta(days=1)
    )
    """How far past the current time a memory's ``created_at`` may be; later is refused,
    since one far-future memory would age every other one (recall, consolidation)."""
    storage_options: dict[str, SecretStr] = Field(default_factory=dict)
    """LanceDB's ``storage_options`` for a store on object storage (``aws_endpoint``,
    ``aws_region``, ``aws_access_key_id``, ``aws_secret_access_key``, ``allow_http``, ...);
    ``ENGRAMDB_STORAGE_OPTIONS`` is a JSON object. Values are secret: never printed."""
    lease_ttl: timedelta = Field(
        timedelta(seconds=DEFAULT_LEASE_TTL_SECONDS), ge=timedelta(seconds=1)
    )
    """How long the writer lease of an object-storage store lives unless renewed: a writer
    that dies unannounced blocks the next one for at most this long (plus a second)."""
    follow_interval: timedelta | None = Field(None, ge=timedelta(0))
    """How often a read-only engine looks for the writer's new commits; None: on every
    call for a local store, every :data:`DEFAULT_REMOTE_FOLLOW_SECONDS` on object storage.
    A write is visible to such a reader at most this long (plus one read) after it returned.
    With None on a local store, LanceDB is asked only when a table's directory of versions
    changed (see :mod:`engramdb.store.watch`); 0 asks it on every call (for a network
    file system whose attribute cache would hide a directory's change)."""
    writer_name: str | None = Field(None, min_length=1, max_length=200)
    """How a writer names itself in its lease (default ``host:pid``); a refused second
    writer, and a read-only server refusing a write, quote it."""
    threads: int = Field(1, gt=0)
    """OpenMP threads for FAISS and torch. One is fastest for single queries."""
    embed_batch_size: int = Field(64, gt=0)
    embed_cache_size: int = Field(50_000, ge=0)
    weights: ScoringWeights = Field(default_factory=ScoringWeights)
    hybrid: HybridWeights = Field(default_factory=HybridWeights)

    @field_validator("lease_ttl", "follow_interval", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        """Accept plain seconds (``ENGRAMDB_LEASE_TTL=5``) besides ISO 8601 (``PT5S``)."""
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value


def default_store_path(settings: Settings | None = None) -> Path:
    """The store used when no path is given: ``$ENGRAMDB_HOME`` or the user data dir."""
    settings = settings or Settings()
    base = settings.home or Path(platformdirs.user_data_dir("engramdb", appauthor=False))
    return base / "default"


def machine_dir(kind: str, key: str, settings: Settings | None = None) -> Path:
    """This machine's folder of ``kind`` for a store it cannot write beside (one on object
    storage), named by a hash of ``key`` (the store's URI): ``<data dir>/<kind>/<hash>``."""
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    return default_store_path(settings).parent / kind / name
