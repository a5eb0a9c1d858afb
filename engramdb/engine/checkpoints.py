"""Checkpoints: name an agent's memory as it is now, and roll back to it later.

The store is one LanceDB table shared by every agent, and LanceDB keeps each
commit as a version. A checkpoint is a LanceDB *tag* on the table's current
version, named after the agent and the checkpoint; rollback reads that agent's
rows at the tagged version and makes them the agent's whole memory in the
latest version, in one commit. Other agents are untouched, and a rollback is
itself a new version: nothing after the checkpoint is lost to history until
compaction cleans it up.

Tag names: ``engramdb.ckpt.<agent key>.<name>``, where the agent key is 16 hex
characters of SHA-256 of the agent name and the name is escaped to LanceDB's
tag alphabet (``_u`` for ``_``, ``_d`` for ``.``, ``_c`` for ``:``, ``_a`` for
``@``). Tags are files, so an escaped name is limited to 160 characters.

Retention: a tag keeps its version, and every data file that version reads,
safe from LanceDB's cleanup for as long as the tag exists. A checkpoint of a
large store can therefore hold disk space after later updates and compactions.
So each agent keeps at most ``keep`` checkpoints (:data:`DEFAULT_KEEP`):
creating one more deletes that agent's oldest, and :func:`delete_checkpoint`
drops one at once (its space comes back at the first compaction after the
store's version retention, ``Settings.version_retention``). The store's cleanup
skips tagged versions and drops the untagged ones around them.

Example:
    >>> engine.checkpoint(agent="bot", name="before-cleanup").memories
    3
    >>> engine.delete(engine.list(agent="bot")[0].id, agent="bot")
    >>> engine.rollback(agent="bot", name="before-cleanup").memories
    3
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from engramdb.errors import NotFoundError, ValidationError
from engramdb.ports import EngineCore
from engramdb.records import check_name
from engramdb.store.table import agent_filter

__all__ = [
    "DEFAULT_KEEP",
    "Checkpoint",
    "RollbackReport",
    "create_checkpoint",
    "delete_checkpoint",
    "list_checkpoints",
    "rollback_checkpoint",
]

DEFAULT_KEEP = 20
"""Checkpoints kept per agent; creating one more deletes the agent's oldest."""
_PREFIX = "engramdb.ckpt."
_MAX_ESCAPED = 160
_ESCAPES = {"_": "_u", ".": "_d", ":": "_c", "@": "_a"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}
_ESCAPED = re.compile(r"_(.)")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A named state of an agent's memory.

    Attributes:
        agent: Whose memory.
        name: The checkpoint's name.
        version: The table version it points at.
        created_at: When that version was committed (UTC).
        memories: How many memories the agent had then.
    """

    agent: str
    name: str
    version: int
    created_at: datetime | None
    memories: int


@dataclass(frozen=True, slots=True)
class RollbackReport:
    """What a rollback did: the checkpoint, and the agent's memory count now."""

    checkpoint: Checkpoint
    memories: int
    removed: int
    version: int


def _agent_key(agent: str) -> str:
    return hashlib.sha256(agent.encode()).hexdigest()[:16]


def _escape(name: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in name)


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(0)), text)


def _tag(agent: str, name: str) -> str:
    escaped = _escape(name)
    if len(escaped) > _MAX_ESCAPED:
        raise ValidationError(
            f"checkpoint name {name!r} is too long once escaped for a LanceDB tag "
            f"({len(escaped)} > {_MAX_ESCAPED} characters); use a shorter name"
        )
    return f"{_PREFIX}{_agent_key(agent)}.{escaped}"


def _tags(engine: EngineCore, agent: str) -> dict[str, int]:
    """The agent's checkpoint names and their versions."""
    prefix = f"{_PREFIX}{_agent_key(agent)}."
    return {
        _unescape(tag[len(prefix) :]): version
        for tag, version in engine.store.tags().items()
        if tag.startswith(prefix)
    }


def _names(agent: object, name: object | None = None) -> None:
    check_name(agent, what="agent")
    if name is not None:
        check_name(name, what="checkpoint")


def create_checkpoint(
    engine: EngineCore, *, agent: str, name: str, keep: int = DEFAULT_KEEP
) -> Checkpoint:
    """Name the current state of an agent's memory.

    Args:
        engine: The :class:`~engramdb.MemoryEngine`.
        agent: Whose memory (an agent with no memories can be checkpointed too:
            rolling back to it empties the agent).
        name: A name unique among the agent's checkpoints.
        keep: Checkpoints to keep for this agent; the oldest beyond it are deleted.

    Raises:
        ValidationError: a bad name, or one the agent already has.
    """
    _names(agent, name)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValidationError(f"keep {keep!r} must be a positive int")
    tag = _tag(agent, name)
    with engine.mutex:
        engine.check_writable()
        engine.flush()  # buffered access counts are part of the state,
        engine.store.fold_access()  # and the tagged version holds them, not the log
        existing = _tags(engine, agent)
        if name in existing:
            raise ValidationError(
                f"agent {agent!r} already has a checkpoint {name!r} (version "
                f"{existing[name]}); delete it first or use another name"
            )
        version = engine.store.version
        engine.store.create_tag(tag, version)
        existing[name] = version
        ordered = sorted(existing.items(), key=lambda kv: (kv[1], kv[0]))
        for old, _ in ordered[: max(len(ordered) - keep, 0)]:
            engine.store.delete_tag(_tag(agent, old))
        memories = engine.store.count(agent_filter(agent))
        when = engine.store.version_times().get(version)
    return Checkpoint(agent, name, version, when, memories)


def list_checkpoints(engine: EngineCore, *, agent: str) -> list[Checkpoint]:
    """The agent's checkpoints, oldest first."""
    _names(agent)
    with engine.mutex:
        engine.check_open()
        tags = _tags(engine, agent)
        times = engine.store.version_times()
        out = []
        for name, version in sorted(tags.items(), key=lambda kv: (kv[1], kv[0])):
            count = engine.store.count_at(version, agent_filter(agent))
            out.append(Checkpoint(agent, name, version, times.get(version), int(count)))
    return out


def _find(engine: EngineCore, agent: str, name: str) -> int:
    tags = _tags(engine, agent)
    if name not in tags:
        have = ", ".join(sorted(tags)) or "none"
        raise NotFoundError(
            f"agent {agent!r} has no checkpoint {name!r} (it has: {have}); list them with "
            "engine.checkpoints(agent=...) (CLI: engramdb checkpoints --agent AGENT)"
        )
    return tags[name]


def rollback_checkpoint(engine: EngineCore, *, agent: str, name: str) -> RollbackReport:
    """Make the agent's memory what it was at the checkpoint, in one commit.

    Other agents are untouched; the checkpoint stays (roll back to it again at will).

    Raises:
        NotFoundError: the agent has no checkpoint by that name.
    """
    _names(agent, name)
    with engine.mutex:
        engine.check_writable()
        engine.flush()
        version = _find(engine, agent, name)
        where = agent_filter(agent)
        old = engine.store.scan_at(version, where)
        before = engine.store.count(where)
        rows = _conform_to(old, engine.store.schema)
        commit = engine.store.replace_agent_rows(agent, rows)
        engine.invalidate(agent)
        report = RollbackReport(
            checkpoint=Checkpoint(
                agent, name, version, engine.store.version_times().get(version), rows.num_rows
            ),
            memories=rows.num_rows,
            removed=max(before - rows.num_rows, 0),
            version=commit.version,
        )
    return report


def delete_checkpoint(engine: EngineCore, *, agent: str, name: str) -> None:
    """Delete a checkpoint; the version it held is freed at a later compaction.

    Raises:
        NotFoundError: the agent has no checkpoint by that name.
    """
    _names(agent, name)
    with engine.mutex:
        engine.check_writable()
        _find(engine, agent, name)
        engine.store.delete_tag(_tag(agent, name))


def _conform_to(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows read at an old version, in the current table's schema."""
    if rows.schema.equals(schema):
        return rows
    missing = [f.name for f in schema if f.name not in rows.column_names]
    if missing:
        raise ValidationError(
            f"the checkpoint's rows lack column(s) {missing} of the current store; it was "
            "taken before a format change and cannot be rolled back to"
        )
    return pa.Table.from_arrays([rows.column(f.name).cast(f.type) for f in schema], schema=schema)
