"""HTTP payloads: pydantic models for requests and responses (the OpenAPI schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from engramdb import Memory, MemoryKind

__all__ = [
    "ERROR_RESPONSES",
    "MAX_BATCH",
    "MAX_K",
    "MAX_LIST",
    "AddBatch",
    "AddMemory",
    "BriefOut",
    "CheckpointIn",
    "ConsolidateIn",
    "ErrorOut",
    "HitOut",
    "HitsOut",
    "MemoriesOut",
    "MemoryList",
    "RecallIn",
    "UpdateMemory",
]

MAX_K = 1000
"""The largest ``k`` a recall over HTTP may ask for."""
MAX_LIST = 1000
"""The largest page of a memory list."""
MAX_BATCH = 1000
"""Items per batch add."""
MAX_TTL_SECONDS = 100 * 365.25 * 86400
NAME_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(9000, 1, 1, tzinfo=UTC)


def _in_range(value: datetime | None) -> datetime | None:
    # Ids embed milliseconds since 1970, and expiry adds a TTL: keep times where both work.
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not _EPOCH <= aware < _LAST:
        raise ValueError("must be between 1970-01-01 and 9000-01-01")
    return value


Time = Annotated[datetime, AfterValidator(_in_range)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Metadata = dict[str, Any]
Component = Annotated[float, Field(ge=-1e30, le=1e30, allow_inf_nan=False)]
"""A vector component: finite, and within float32's range."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddMemory(_In):
    """One memory to store (the arguments of ``MemoryEngine.add``)."""

    text: str = Field(min_length=1)
    kind: MemoryKind = MemoryKind.EPISODIC
    session: Name | None = None
    metadata: Metadata | None = None
    importance: float | None = Field(None, ge=0.0, le=1.0)
    created_at: Time | None = None
    ttl: float | None = Field(None, gt=0.0, le=MAX_TTL_SECONDS, description="Seconds.")
    parent: str | None = Field(None, pattern=ID_PATTERN)

    def engine_fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class AddBatch(_In):
    """Several memories, stored in one commit (all validated before any is stored)."""

    items: list[AddMemory] = Field(min_length=1, max_length=MAX_BATCH)


class UpdateMemory(_In):
    """What to change: text (re-embedded), metadata (replaced) or importance."""

    text: str | None = Field(None, min_length=1)
    metadata: Metadata | None = None
    importance: float | None = Field(None, ge=0.0, le=1.0)


class RecallIn(_In):
    """The arguments of ``MemoryEngine.recall``."""

    query: str | list[Component] = Field(description="Text, or a vector of the store's dimension.")
    k: int = Field(10, ge=1, le=MAX_K)
    kinds: list[MemoryKind] | None = None
    session: Name | None = None
    where: Metadata | None = None
    since: Time | None = None
    until: Time | None = None
    include_archived: bool = False
    now: Time | None = None
    record_access: bool = True
    scope: Literal["all", "subtree"] = "all"
    root: str | None = Field(None, pattern=ID_PATTERN)
    depth: tuple[float, float] | None = None
    rank: Literal["similarity", "distance"] = "similarity"


class ConsolidateIn(_In):
    """Whether to only report what a pass would do."""

    dry_run: bool = False


class CheckpointIn(_In):
    """A checkpoint's name."""

    name: str = Field(min_length=1, max_length=128)


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and the engine's message."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no memory with id '01J...' for agent 'bot'"])


class ErrorOut(BaseModel):
    """The one error shape of every response with a 4xx or 5xx status."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (401, "No key, or an unknown key."),
        (403, "The key may not use this agent, or lacks the scope."),
        (404, "No such memory, checkpoint or agent."),
        (413, "The body is over the server's limit."),
        (422, "Bad input; the message names the field."),
        (429, "The key's rate limit is spent; see Retry-After."),
        (503, "The store is closed or locked."),
    )
}
"""Error statuses every route may answer, for the OpenAPI schema."""


class MemoriesOut(BaseModel):
    """Memories written by a batch, in the order given."""

    memories: list[Memory]


class MemoryList(BaseModel):
    """One page of an agent's memories (oldest first) and how many match in all."""

    items: list[Memory]
    total: int


class HitOut(BaseModel):
    """One recall result; ``score`` is higher for a better match."""

    memory: Memory
    score: float
    similarity: float
    recency: float
    importance: float
    access: float
    depth: float | None = None


class HitsOut(BaseModel):
    """Recall results, best first."""

    hits: list[HitOut]


class BriefOut(BaseModel):
    """A session-start brief."""

    text: str
    tokens: int
    budget_tokens: int
    memories: list[Memory]
    sections: dict[str, list[str]]
