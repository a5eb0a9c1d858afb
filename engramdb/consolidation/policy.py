"""What a consolidation pass does: one pydantic model, one section per stage.

A policy is a value: build it in Python, or load it from a JSON or TOML file
whose sections mirror the stages::

    [dedup]
    threshold = 0.9

    [cluster]
    archive_members = false

    [forget]
    enabled = false

    summarize = "mypackage.llm:summarize"   # top level, before any section

Every default is a named constant below, and the module docstring of
:mod:`engramdb.consolidation.calibration` says how the two similarity
thresholds were chosen for the bundled all-MiniLM-L6-v2.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import ConfigDict, Field, field_validator, model_validator

from engramdb._validation import CheckedModel, problems
from engramdb.errors import ValidationError

__all__ = [
    "DEFAULT_ARCHIVE_BELOW",
    "DEFAULT_CLUSTER_THRESHOLD",
    "DEFAULT_CLUSTER_WINDOW_DAYS",
    "DEFAULT_DELETE_BELOW",
    "DEFAULT_DUPLICATE_THRESHOLD",
    "DEFAULT_GIST_SENTENCES",
    "DEFAULT_HALF_LIFE_DAYS",
    "DEFAULT_MAX_CLUSTER_SIZE",
    "DEFAULT_MIN_CLUSTER_SIZE",
    "ClusterPolicy",
    "ConsolidationPolicy",
    "DedupPolicy",
    "ExpirePolicy",
    "ForgetPolicy",
    "Summarizer",
]

Summarizer = Callable[[list[str]], str]
"""Writes a gist from its members' texts (oldest first); returns the gist text."""

KindName = Literal["episodic", "semantic", "procedural"]

DEFAULT_DUPLICATE_THRESHOLD = 0.89
"""Cosine above which two memories of one kind are near-duplicates (calibrated)."""
DEFAULT_CLUSTER_THRESHOLD = 0.70
"""Cosine to a cluster's centre at which an episode joins it, as a variant (calibrated)."""
DEFAULT_CLUSTER_WINDOW_DAYS = 7.0
"""Episodes younger than this (on the agent's clock) are left as they are."""
DEFAULT_MIN_CLUSTER_SIZE = 3
DEFAULT_MAX_CLUSTER_SIZE = 8
"""A gist stands for at most this many episodes: small enough to read as one unit."""
DEFAULT_GIST_SENTENCES = 4
DEFAULT_HALF_LIFE_DAYS = 180.0
DEFAULT_ARCHIVE_BELOW = 0.05
"""Retention below which a memory is archived (about 4.3 half-lives of disuse)."""
DEFAULT_DELETE_BELOW = 0.005
"""Retention below which a memory is deleted (about 7.6 half-lives of disuse)."""


class _Stage(CheckedModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True


class ExpirePolicy(_Stage):
    """Stage 1: delete memories past ``expires_at`` and working memory over capacity."""


class DedupPolicy(_Stage):
    """Stage 2: merge exact duplicates (same normalized text), then near-duplicates.

    Attributes:
        exact: Merge memories whose normalized text is the same.
        near: Merge memories whose cosine similarity reaches ``threshold``.
        threshold: Near-duplicate cosine; calibrated for all-MiniLM-L6-v2 (see
            :mod:`engramdb.consolidation.calibration`); recalibrate for another model.
        neighbors: Nearest neighbours examined per memory (the k of the k-NN graph).
        kinds: Kinds deduplicated (working memory only expires).
        cross_kind: Also merge memories of different kinds (an episode with a fact).
    """

    exact: bool = True
    near: bool = True
    threshold: float = Field(DEFAULT_DUPLICATE_THRESHOLD, gt=0.0, le=1.0)
    neighbors: int = Field(16, ge=1, le=1024)
    kinds: tuple[KindName, ...] = ("episodic", "semantic", "procedural")
    cross_kind: bool = False


class ClusterPolicy(_Stage):
    """Stage 3: gather old episodes into topic clusters, each under a semantic gist.

    A cluster is a star in the k-NN graph: a centre (the densest free episode)
    and up to ``max_size - 1`` free neighbours within ``threshold`` of it.

    Attributes:
        window_days: Only episodes older than this are clustered.
        threshold: Cosine to the centre a member needs; calibrated for all-MiniLM-L6-v2
            so that variants of the centre join and other statements on its topic do not.
        min_size: A cluster needs at least this many episodes to get a gist.
        max_size: And holds at most this many.
        archive_members: Archive the members under their gist (they stay findable
            with ``include_archived`` and ``get``); False leaves them active, the
            gist only their parent.
        max_sentences: Distinct member texts an extractive gist quotes.
        cover: Cosine at which a quoted member counts as covering another.
    """

    window_days: float = Field(DEFAULT_CLUSTER_WINDOW_DAYS, ge=0.0)
    threshold: float = Field(DEFAULT_CLUSTER_THRESHOLD, gt=0.0, le=1.0)
    min_size: int = Field(DEFAULT_MIN_CLUSTER_SIZE, ge=2)
    max_size: int = Field(DEFAULT_MAX_CLUSTER_SIZE, ge=2, le=1000)
    archive_members: bool = True
    max_sentences: int = Field(DEFAULT_GIST_SENTENCES, ge=1, le=100)
    cover: float = Field(0.8, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _sizes(self) -> ClusterPolicy:
        if self.max_size < self.min_size:
            raise ValueError(f"max_size {self.max_size} is below min_size {self.min_size}")
        return self


class ForgetPolicy(_Stage):
    """Stage 4: archive, then delete, memories whose retention has decayed.

    ``retention = 0.5 ** (age / half_life)`` with
    ``half_life = half_life_days * (0.5 + importance) * (1 + ln(1 + access_count))``
    and ``age`` the time since the memory was created or last recalled, whichever
    is later (see :mod:`engramdb.consolidation.retention`). Pinned memories
    (importance 1.0 or ``metadata['pinned']``) are never forgotten.

    Attributes:
        half_life_days: Half-life of a memory of importance 0.5 never recalled.
        archive_below: Archive an active memory whose retention is below this.
        delete_below: Delete one below this (0 never deletes).
    """

    half_life_days: float = Field(DEFAULT_HALF_LIFE_DAYS, gt=0.0)
    archive_below: float = Field(DEFAULT_ARCHIVE_BELOW, ge=0.0, lt=1.0)
    delete_below: float = Field(DEFAULT_DELETE_BELOW, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _order(self) -> ForgetPolicy:
        if self.delete_below > self.archive_below:
            raise ValueError(
                f"delete_below {self.delete_below} is above archive_below {self.archive_below}; "
                "a memory is archived before it is deleted"
            )
        return self


def _import_callable(spec: str) -> Summarizer:
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"summarize {spec!r} must be an import path 'package.module:function'")
    try:
        func = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import summarize {spec!r}: {exc}") from None
    if not callable(func):
        raise ValueError(f"summarize {spec!r} is not callable")
    return func  # type: ignore[no-any-return]


class ConsolidationPolicy(CheckedModel):
    """Which stages a pass runs, and how.

    Attributes:
        expire: Stage 1, expiry.
        dedup: Stage 2, duplicate merging.
        cluster: Stage 3, topic gists.
        forget: Stage 4, retention.
        clock: ``"agent"`` measures ages against the agent's newest memory, capped at
            the current time (a pass is a function of the stored state, an idle agent
            forgets nothing, and a memory dated ahead cannot age the others);
            ``"wall"`` against the current time.
        summarize: Writes gists instead of the extractive default: a callable
            ``summarize(texts) -> str`` or, in a file, an import path ``"pkg.mod:func"``.

    Example:
        >>> policy = ConsolidationPolicy(forget={"enabled": False}, dedup={"threshold": 0.9})
        >>> engine.consolidate(agent="bot", policy=policy, dry_run=True).dry_run
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    expire: ExpirePolicy = ExpirePolicy()
    dedup: DedupPolicy = DedupPolicy()
    cluster: ClusterPolicy = ClusterPolicy()
    forget: ForgetPolicy = ForgetPolicy()
    clock: Literal["agent", "wall"] = "agent"
    summarize: Summarizer | None = Field(None, exclude=True)

    @field_validator("summarize", mode="before")
    @classmethod
    def _summarize(cls, value: object) -> object:
        return _import_callable(value) if isinstance(value, str) else value

    @classmethod
    def from_file(cls, path: str | Path) -> ConsolidationPolicy:
        """Load a policy from a ``.json`` or ``.toml`` file.

        Raises:
            ValidationError: the file cannot be read or does not describe a policy.
        """
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read policy file {str(path)!r}: {exc}") from None
        try:
            data: Any = tomllib.loads(raw) if path.suffix == ".toml" else json.loads(raw)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            kind = "TOML" if path.suffix == ".toml" else "JSON"
            raise ValidationError(
                f"policy file {str(path)!r} is not valid {kind} ({exc}); name it .toml for TOML"
            ) from None
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: object, *, source: str = "policy") -> ConsolidationPolicy:
        """Validate a plain mapping (parsed JSON or TOML) into a policy."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"{source} must be a mapping of stage sections, got {data!r:.80}")
        try:
            return cls.model_validate(dict(data))
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"{source} is not a valid consolidation policy: {problems(exc)}"
            ) from None

    def stages(self) -> Sequence[str]:
        """Names of the enabled stages, in the order a pass runs them."""
        return [
            name for name in ("expire", "dedup", "cluster", "forget") if getattr(self, name).enabled
        ]
