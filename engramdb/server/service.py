"""What both server faces (HTTP and MCP) do to the engine, and the events each write publishes.

Every write holds the engine's lock while it writes and publishes, so an
agent's event sequence follows its commit order. Methods block: call them from
worker threads, never on the event loop.
"""

from __future__ import annotations

import builtins
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python

from engramdb import Hit, Memory, MemoryEngine
from engramdb.engine.brief import Brief
from engramdb.errors import NotFoundError, ValidationError
from engramdb.server.errors import ConflictError
from engramdb.server.events import EventHub

__all__ = ["MemoryService", "hit_json", "memory_json", "plain"]


def memory_json(memory: Memory) -> dict[str, Any]:
    """A memory as JSON values (times ISO 8601 with zone)."""
    return memory.model_dump(mode="json")


def hit_json(hit: Hit) -> dict[str, Any]:
    """A recall hit as JSON values."""
    return {
        "memory": memory_json(hit.memory),
        "score": hit.score,
        "similarity": hit.similarity,
        "recency": hit.recency,
        "importance": hit.importance,
        "access": hit.access,
        "depth": hit.depth,
    }


def plain(value: Any) -> Any:
    """A report (dataclass, model, path, time) as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return to_jsonable_python(value)


class MemoryService:
    """The engine operations the servers expose, with their events.

    Args:
        engine: An open, writable engine; the service does not close it.
        hub: Where writes publish their events.
    """

    def __init__(self, engine: MemoryEngine, hub: EventHub) -> None:
        self.engine = engine
        self.hub = hub

    # -- writes --------------------------------------------------------------------------

    def add(self, agent: str, fields: dict[str, Any]) -> Memory:
        """Store one memory (``fields`` as ``MemoryEngine.add`` takes them)."""
        return self.add_many(agent, [fields])[0]

    def add_many(self, agent: str, items: builtins.list[dict[str, Any]]) -> builtins.list[Memory]:
        """Store several memories in one commit."""
        with self.engine.mutex:
            memories = self.engine.add_many(items, agent=agent)
            for m in memories:
                self.hub.publish(agent, "memory.added", memory_json(m))
        return memories

    def update(self, agent: str, memory_id: str, **changes: Any) -> Memory:
        """Change a memory's text, metadata or importance."""
        with self.engine.mutex:
            memory = self.engine.update(memory_id, agent=agent, **changes)
            self.hub.publish(agent, "memory.updated", memory_json(memory))
        return memory

    def delete(self, agent: str, memory_id: str) -> None:
        """Delete one memory for good."""
        with self.engine.mutex:
            self.engine.delete(memory_id, agent=agent)
            self.hub.publish(agent, "memory.deleted", {"id": memory_id})

    def delete_agent(self, agent: str) -> int:
        """Delete every memory of an agent; returns how many."""
        with self.engine.mutex:
            n = self.engine.delete_agent(agent)
            self.hub.publish(agent, "agent.deleted", {"deleted": n})
        return n

    def consolidate(self, agent: str, *, dry_run: bool) -> dict[str, Any]:
        """Consolidate one agent; returns its report."""
        with self.engine.mutex:
            report = self.engine.consolidate(agent=agent, dry_run=dry_run)
            try:
                out: dict[str, Any] = report[agent].to_dict()
            except NotFoundError:  # an agent with no memories has nothing to report
                out = {"agent": agent, "changed": False}
            out["dry_run"] = dry_run
            if not dry_run:
                self.hub.publish(agent, "agent.consolidated", out)
        return out

    def checkpoint(self, agent: str, name: str) -> dict[str, Any]:
        """Name the agent's current state."""
        with self.engine.mutex:
            if any(c.name == name for c in self.engine.checkpoints(agent=agent)):
                raise ConflictError(
                    f"agent {agent!r} already has a checkpoint {name!r}; pick another name"
                )
            out: dict[str, Any] = plain(self.engine.checkpoint(agent=agent, name=name))
        return out

    def rollback(self, agent: str, name: str) -> dict[str, Any]:
        """Restore the agent to a checkpoint."""
        with self.engine.mutex:
            out: dict[str, Any] = plain(self.engine.rollback(agent=agent, name=name))
            self.hub.publish(agent, "agent.restored", {"how": "rollback", **out})
        return out

    def import_snapshot(
        self, agent: str, path: Path, *, mode: str, key: str | None
    ) -> dict[str, Any]:
        """Import a snapshot file into ``agent``.

        Raises:
            ConflictError: ``mode="fail"`` and the agent already has memories.
        """
        with self.engine.mutex:
            if mode == "fail" and self.engine.count(agent=agent):
                raise ConflictError(
                    f"agent {agent!r} already has memories; import with mode=replace to swap "
                    "them for the snapshot's, mode=merge to add to them, or as_agent=<new name> "
                    "for a copy"
                )
            report = self.engine.import_snapshot(path, agent=agent, mode=mode, key=key)
            out: dict[str, Any] = plain(report)
            self.hub.publish(agent, "agent.restored", {"how": "import", **out})
        return out

    # -- reads ---------------------------------------------------------------------------

    def list(
        self,
        agent: str,
        *,
        kind: str | None,
        session: str | None,
        limit: int,
        offset: int,
        include_archived: bool = False,
    ) -> tuple[builtins.list[Memory], int]:
        """A page of memories and the number matching in all."""
        with self.engine.mutex:
            if kind is None and session is None:
                total = self.engine.count(agent=agent, include_archived=include_archived)
                items = self.engine.list(
                    agent=agent, limit=limit, offset=offset, include_archived=include_archived
                )
            else:
                every = self.engine.list(
                    agent=agent,
                    kind=kind,
                    session=session,
                    limit=None,
                    include_archived=include_archived,
                )
                total, items = len(every), every[offset : offset + limit]
        return items, total

    def recall(
        self, agent: str, query: str | builtins.list[float], **kwargs: Any
    ) -> builtins.list[Hit]:
        """Recall (the arguments of ``MemoryEngine.recall``)."""
        return self.engine.recall(query, agent=agent, **kwargs)

    def brief(
        self, agent: str, *, session: str | None, query: str | None, budget_tokens: int
    ) -> Brief:
        """A session-start brief."""
        return self.engine.brief(
            agent=agent, session=session, query=query, budget_tokens=budget_tokens
        )

    def export_snapshot(self, agent: str, *, vectors: str, key: str | None) -> Path:
        """Write the agent's snapshot to a new temporary file; the caller deletes it."""
        if agent not in self.engine.agents():
            raise NotFoundError(f"agent {agent!r} has no memories to export")
        handle = tempfile.NamedTemporaryFile(prefix="engramdb-", suffix=".egm", delete=False)
        handle.close()
        path = Path(handle.name)
        try:
            self.engine.export_snapshot(path, agent=agent, vectors=vectors, key=key)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def stats(self, agent: str) -> dict[str, Any]:
        """Counts of an agent's memories by kind and status."""
        with self.engine.mutex:
            memories = self.engine.list(agent=agent, limit=None, include_archived=True)
        by_kind: dict[str, int] = {}
        archived = 0
        for m in memories:
            by_kind[m.kind.value] = by_kind.get(m.kind.value, 0) + 1
            archived += m.status.value == "archived"
        return {"agent": agent, "memories": len(memories), "archived": archived, "kinds": by_kind}

    def check_vectors(self, vectors: str) -> str:
        """Validate a snapshot vector encoding name."""
        if vectors not in ("float32", "float16", "int8"):
            raise ValidationError(
                f"vectors {vectors!r} is not a snapshot vector encoding; use float32, float16 "
                "or int8"
            )
        return vectors
