"""REST routes for memories: add, list, get, update, delete, recall and brief."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from engramdb import Memory, MemoryKind
from engramdb.engine.brief import DEFAULT_BUDGET_TOKENS, MAX_BUDGET_TOKENS
from engramdb.server.deps import AgentPath, IdPath, Key, State
from engramdb.server.schemas import (
    ERROR_RESPONSES,
    MAX_LIST,
    NAME_PATTERN,
    AddBatch,
    AddMemory,
    BriefOut,
    HitOut,
    HitsOut,
    MemoriesOut,
    MemoryList,
    RecallIn,
    UpdateMemory,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


@router.get("/health", tags=["server"])
async def health() -> dict[str, str]:
    """Liveness: ``{"status": "ok"}``; needs no key and tells nothing else."""
    return {"status": "ok"}


@router.get("/agents", tags=["agents"])
def list_agents(key: Key, state: State) -> dict[str, list[str]]:
    """The agents with memories that this key may see."""
    return {"agents": key.visible(state.service.engine.agents())}


@router.post("/agents/{agent}/memories", status_code=201, tags=["memories"])
def add_memory(agent: AgentPath, body: AddMemory, key: Key, state: State) -> Memory:
    """Store one memory; the next recall sees it."""
    key.check(agent, "write")
    return state.service.add(agent, body.engine_fields())


@router.post("/agents/{agent}/memories/batch", status_code=201, tags=["memories"])
def add_memories(agent: AgentPath, body: AddBatch, key: Key, state: State) -> MemoriesOut:
    """Store several memories in one commit; all are validated before any is stored."""
    key.check(agent, "write")
    items = [item.engine_fields() for item in body.items]
    return MemoriesOut(memories=state.service.add_many(agent, items))


@router.get("/agents/{agent}/memories", tags=["memories"])
def list_memories(
    agent: AgentPath,
    key: Key,
    state: State,
    kind: MemoryKind | None = None,
    session: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=0, le=MAX_LIST)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    include_archived: bool = False,
) -> MemoryList:
    """An agent's memories, oldest first, one page at a time (archived ones on request)."""
    key.check(agent, "read")
    items, total = state.service.list(
        agent,
        kind=kind,
        session=session,
        limit=limit,
        offset=offset,
        include_archived=include_archived,
    )
    return MemoryList(items=items, total=total)


@router.get("/agents/{agent}/memories/{memory_id}", tags=["memories"])
def get_memory(agent: AgentPath, memory_id: IdPath, key: Key, state: State) -> Memory:
    """One memory, whatever its status."""
    key.check(agent, "read")
    return state.service.engine.get(memory_id, agent=agent)


@router.patch("/agents/{agent}/memories/{memory_id}", tags=["memories"])
def update_memory(
    agent: AgentPath, memory_id: IdPath, body: UpdateMemory, key: Key, state: State
) -> Memory:
    """Change a memory's text (re-embedded), metadata (replaced) or importance."""
    key.check(agent, "write")
    return state.service.update(agent, memory_id, **body.model_dump(exclude_none=True))


@router.delete("/agents/{agent}/memories/{memory_id}", status_code=204, tags=["memories"])
def delete_memory(agent: AgentPath, memory_id: IdPath, key: Key, state: State) -> Response:
    """Delete a memory for good."""
    key.check(agent, "write")
    state.service.delete(agent, memory_id)
    return Response(status_code=204)


@router.post("/agents/{agent}/recall", tags=["recall"])
def recall(agent: AgentPath, body: RecallIn, key: Key, state: State) -> HitsOut:
    """The memories most relevant to a query, best first (every ``recall`` argument)."""
    key.check(agent, "read")
    args: dict[str, Any] = body.model_dump(exclude={"query"}, exclude_none=True)
    hits = state.service.recall(agent, body.query, **args)
    return HitsOut(
        hits=[
            HitOut(
                memory=h.memory,
                score=h.score,
                similarity=h.similarity,
                recency=h.recency,
                importance=h.importance,
                access=h.access,
                depth=h.depth,
            )
            for h in hits
        ]
    )


@router.get("/agents/{agent}/brief", tags=["recall"])
def brief(
    agent: AgentPath,
    key: Key,
    state: State,
    session: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    query: Annotated[str | None, Query(min_length=1, max_length=4096)] = None,
    budget_tokens: Annotated[int, Query(ge=1, le=MAX_BUDGET_TOKENS)] = DEFAULT_BUDGET_TOKENS,
) -> BriefOut:
    """What the agent should know at session start, within a token budget."""
    key.check(agent, "read")
    made = state.service.brief(agent, session=session, query=query, budget_tokens=budget_tokens)
    return BriefOut(
        text=made.text,
        tokens=made.tokens,
        budget_tokens=made.budget_tokens,
        memories=list(made.memories),
        sections={k: list(v) for k, v in made.sections.items()},
    )
