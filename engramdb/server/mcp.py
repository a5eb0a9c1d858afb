"""The MCP face: engramdb's tools, resources and a prompt on the official MCP SDK (v2).

Two ways to serve the same tools:

- over stdio for one agent (``engramdb mcp --agent NAME``): the tools take no
  ``agent`` argument; see :func:`build_stdio_server`;
- over streamable HTTP at ``/mcp`` of the HTTP server, with the HTTP server's
  keys: each tool takes an ``agent`` argument checked against the caller's key.

Tool results are pydantic models (structured output), capped at about
:data:`CAP_TOKENS` tokens; a result that was cut says so (``truncated``, ``note``).
No tool deletes a whole agent.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, TypeVar, get_type_hints

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ToolAnnotations
from pydantic import BaseModel, Field

from engramdb import Memory
from engramdb.engine.brief import DEFAULT_BUDGET_TOKENS
from engramdb.errors import EngramError, ValidationError
from engramdb.server.service import MemoryService

__all__ = [
    "CAP_TOKENS",
    "BriefResult",
    "Forgotten",
    "MemoryPage",
    "MemoryView",
    "RecallResult",
    "build_mcp_server",
]

CAP_TOKENS = 8000
"""About how many tokens a tool result may hold (estimated at 4 characters a token)."""
_CAP_CHARS = CAP_TOKENS * 4
_MAX_K = 50
_MAX_LIST = 200
_INSTRUCTIONS = (
    "Long-term memory for this agent. Call brief at the start of a session, recall before "
    "answering from memory, remember what is worth keeping (semantic for facts, procedural "
    "for instructions, episodic for events), update_memory or forget to correct it."
)
Kind = Literal["episodic", "semantic", "procedural", "working"]
Gate = Callable[[Context, str, str], None]
"""Checks that the caller may use an agent with a scope; raises EngramError if not."""
F = TypeVar("F", bound=Callable[..., Any])


class MemoryView(BaseModel):
    """A memory as a tool shows it."""

    id: str
    kind: str
    text: str
    session: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    importance: float
    created_at: datetime
    updated_at: datetime
    status: str
    parent_id: str | None = None
    truncated: bool = False

    @classmethod
    def of(cls, memory: Memory, *, max_chars: int = _CAP_CHARS // 2) -> MemoryView:
        text, cut = memory.text, len(memory.text) > max_chars
        if cut:
            text = (
                f"{text[:max_chars]} [... {len(memory.text) - max_chars} more characters; read "
                f"engram://{memory.agent}/memories/{memory.id} for all of it]"
            )
        return cls(
            id=memory.id,
            kind=memory.kind.value,
            text=text,
            session=memory.session,
            metadata=memory.metadata,
            importance=memory.importance,
            created_at=memory.created_at,
            updated_at=memory.updated_at,
            status=memory.status.value,
            parent_id=memory.parent_id,
            truncated=cut,
        )


class HitView(BaseModel):
    """One recall result; higher score is a better match."""

    memory: MemoryView
    score: float
    similarity: float


class RecallResult(BaseModel):
    """Recall results, best first."""

    hits: list[HitView]
    truncated: bool = False
    note: str | None = None


class MemoryPage(BaseModel):
    """A page of memories, oldest first, and how many match in all."""

    items: list[MemoryView]
    total: int
    truncated: bool = False
    note: str | None = None


class BriefResult(BaseModel):
    """A session-start brief."""

    text: str
    tokens: int
    memory_ids: list[str]
    truncated: bool = False


class Forgotten(BaseModel):
    """A deleted memory."""

    id: str
    deleted: bool = True


M = TypeVar("M", bound=BaseModel)


def _capped(items: list[M], what: str) -> tuple[list[M], str | None]:
    """Keep leading items while their JSON stays under the cap; say how many were cut."""
    kept: list[M] = []
    size = 0
    for item in items:
        size += len(item.model_dump_json())
        if size > _CAP_CHARS and kept:
            break
        kept.append(item)
    if len(kept) == len(items):
        return kept, None
    return kept, (
        f"cut to {len(kept)} of {len(items)} {what} to stay under about {CAP_TOKENS} tokens; "
        "ask for fewer, or page with offset"
    )


@contextmanager
def _tool_errors() -> Iterator[None]:
    # The one place engine errors become tool errors (their message, no traceback).
    try:
        yield
    except EngramError as exc:
        raise ToolError(str(exc)) from exc


def _fixed_agent(fn: F, agent: str) -> F:
    """``fn`` without its ``agent`` parameter, always called with ``agent``."""
    sig = inspect.signature(fn, eval_str=True)
    hints = get_type_hints(fn, include_extras=True)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, agent=agent, **kwargs)

    del wrapper.__wrapped__  # the signature is ours, not fn's
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in sig.parameters.values() if p.name != "agent"]
    )
    wrapper.__annotations__ = {k: v for k, v in hints.items() if k != "agent"}
    return wrapper  # type: ignore[return-value]


def build_mcp_server(
    service: Callable[[], MemoryService],
    *,
    agent: str | None = None,
    gate: Gate | None = None,
    name: str = "engramdb",
) -> MCPServer:
    """An MCP server exposing an engine's memory.

    Args:
        service: Returns the service to use (it may open the engine on first call).
        agent: Serve only this agent; tools then take no ``agent`` argument (stdio).
        gate: Authorizes each call to an agent with a scope (HTTP with keys);
            None allows everything.
        name: The server's name in the handshake.
    """
    server = MCPServer(name, instructions=_INSTRUCTIONS, log_level="WARNING")

    def allow(ctx: Context, who: str, scope: str) -> None:
        if agent is not None and who != agent:
            raise ValidationError(f"this server serves agent {agent!r} only, not {who!r}")
        if gate is not None:
            gate(ctx, who, scope)

    def remember(
        agent: str,
        text: str,
        ctx: Context,
        kind: Kind = "episodic",
        session: str | None = None,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
    ) -> MemoryView:
        """Store a memory: episodic (an event), semantic (a fact), procedural (an
        instruction) or working (a short-lived note for this session)."""
        with _tool_errors():
            allow(ctx, agent, "write")
            optional = {"session": session, "metadata": metadata, "importance": importance}
            given = {k: v for k, v in optional.items() if v is not None}
            fields = {"text": text, "kind": kind, **given}
            return MemoryView.of(service().add(agent, fields))

    def recall(
        agent: str,
        query: str,
        ctx: Context,
        k: int = 5,
        kinds: list[Kind] | None = None,
        session: str | None = None,
        where: dict[str, Any] | None = None,
    ) -> RecallResult:
        """The memories most relevant to a query, best first. ``where`` filters on
        metadata, e.g. {"topic": "travel"} or {"score": {"$gt": 2}}."""
        with _tool_errors():
            allow(ctx, agent, "read")
            if not 1 <= k <= _MAX_K:
                raise ValidationError(f"k {k} is outside 1 to {_MAX_K}; ask for fewer")
            hits = service().recall(agent, query, k=k, kinds=kinds, session=session, where=where)
            views = [
                HitView(memory=MemoryView.of(h.memory), score=h.score, similarity=h.similarity)
                for h in hits
            ]
            kept, note = _capped(views, "hits")
            return RecallResult(hits=kept, truncated=note is not None, note=note)

    def brief(
        agent: str,
        ctx: Context,
        session: str | None = None,
        query: str | None = None,
        budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    ) -> BriefResult:
        """What to know at the start of a session: working memory, instructions,
        relevant knowledge and recent episodes, within a token budget."""
        with _tool_errors():
            allow(ctx, agent, "read")
            made = service().brief(
                agent,
                session=session,
                query=query,
                budget_tokens=min(budget_tokens, CAP_TOKENS),
            )
            return BriefResult(
                text=made.text,
                tokens=made.tokens,
                memory_ids=[m.id for m in made.memories],
                truncated=budget_tokens > CAP_TOKENS,
            )

    def update_memory(
        agent: str,
        id: str,
        ctx: Context,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
    ) -> MemoryView:
        """Change a memory's text, metadata (replaced whole) or importance (0 to 1)."""
        with _tool_errors():
            allow(ctx, agent, "write")
            changes = {
                k: v
                for k, v in (("text", text), ("metadata", metadata), ("importance", importance))
                if v is not None
            }
            return MemoryView.of(service().update(agent, id, **changes))

    def forget(agent: str, id: str, ctx: Context) -> Forgotten:
        """Delete one memory for good."""
        with _tool_errors():
            allow(ctx, agent, "write")
            service().delete(agent, id)
            return Forgotten(id=id)

    def list_memories(
        agent: str,
        ctx: Context,
        kind: Kind | None = None,
        session: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> MemoryPage:
        """The agent's memories, oldest first, a page at a time."""
        with _tool_errors():
            allow(ctx, agent, "read")
            if not 0 <= limit <= _MAX_LIST or offset < 0:
                raise ValidationError(
                    f"limit {limit} must be 0 to {_MAX_LIST} and offset {offset} not negative"
                )
            items, total = service().list(
                agent, kind=kind, session=session, limit=limit, offset=offset
            )
            kept, note = _capped([MemoryView.of(m) for m in items], "memories")
            return MemoryPage(items=kept, total=total, truncated=note is not None, note=note)

    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    additive = ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
    )
    changing = ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
    )
    tools: list[tuple[Callable[..., Any], ToolAnnotations]] = [
        (remember, additive),
        (recall, read_only),
        (brief, read_only),
        (update_memory, changing),
        (forget, changing),
        (list_memories, read_only),
    ]
    for fn, notes in tools:
        server.add_tool(
            fn if agent is None else _fixed_agent(fn, agent),
            name=fn.__name__,
            annotations=notes,
            structured_output=True,
        )

    @contextmanager
    def resource_errors() -> Iterator[None]:
        try:
            yield
        except EngramError as exc:
            raise ResourceError(str(exc)) from exc

    @server.resource("engram://{agent}/stats", mime_type="application/json")
    def stats(agent: str, ctx: Context) -> str:
        """Counts of the agent's memories by kind."""
        import json

        with resource_errors():
            allow(ctx, agent, "read")
            return json.dumps(service().stats(agent))

    @server.resource("engram://{agent}/memories/{memory_id}", mime_type="application/json")
    def memory(agent: str, memory_id: str, ctx: Context) -> str:
        """One memory, in full."""
        with resource_errors():
            allow(ctx, agent, "read")
            return service().engine.get(memory_id, agent=agent).model_dump_json()

    def recall_context(agent: str, topic: str, ctx: Context) -> str:
        """Ask the model to answer with what memory holds about a topic."""
        try:
            allow(ctx, agent, "read")
            hits = service().recall(agent, topic, k=8, record_access=False)
        except EngramError as exc:
            # a prompt reports only MCPError as itself; anything else reads "internal error"
            raise MCPError(INVALID_PARAMS, str(exc)) from exc
        lines = [f"- ({h.memory.kind.value}) {' '.join(h.memory.text.split())}" for h in hits]
        known = "\n".join(lines) if lines else "(nothing stored about this yet)"
        return (
            f"Here is what your memory holds about {topic!r}, most relevant first:\n{known}\n\n"
            "Use it where it helps, say when it does not cover the question, and call "
            "remember for anything new worth keeping."
        )

    server.prompt(name="recall_context")(
        recall_context if agent is None else _fixed_agent(recall_context, agent)
    )
    return server
