"""Checkpoints: named states of one agent's memory, rolled back without touching others."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engramdb import MemoryEngine
from engramdb.engine.checkpoints import (
    create_checkpoint,
    delete_checkpoint,
    list_checkpoints,
    rollback_checkpoint,
)
from engramdb.errors import NotFoundError, ReadOnlyError, ValidationError


def dump(engine: MemoryEngine, agent: str) -> list[dict[str, Any]]:
    return [m.model_dump() for m in engine.list(agent=agent, limit=None, include_archived=True)]


@pytest.mark.s3
def test_rollback_restores_one_agent_and_leaves_others(engine: MemoryEngine) -> None:
    made = engine.add_many([f"bot memory {i}" for i in range(5)], agent="bot")
    engine.add("zed memory", agent="zed")
    engine.recall("bot memory 1", agent="bot", k=2)  # buffered access counts are state too
    cp = engine.checkpoint(agent="bot", name="v1")
    assert (cp.agent, cp.name, cp.memories) == ("bot", "v1", 5)
    assert cp.created_at is not None and cp.created_at.tzinfo is not None
    saved = dump(engine, "bot")
    # change everything about bot, and zed too
    engine.update(made[0].id, metadata={"changed": True})
    engine.delete(made[1].id)
    engine.add("bot memory after", agent="bot")
    zed_after = engine.add("zed memory after", agent="zed")
    zed = dump(engine, "zed")
    report = engine.rollback(agent="bot", name="v1")
    assert (report.memories, report.removed) == (5, 0)
    assert dump(engine, "bot") == saved
    assert dump(engine, "zed") == zed and engine.get(zed_after.id).text == "zed memory after"
    assert [h.memory.id for h in engine.recall("bot memory 1", agent="bot", k=1)] == [made[1].id]
    # the checkpoint survives its rollback, and reopening
    engine.add("again", agent="bot")
    engine.rollback(agent="bot", name="v1")
    assert dump(engine, "bot") == saved


def test_rollback_to_an_empty_agent(engine: MemoryEngine) -> None:
    engine.add("zed memory", agent="zed")
    engine.checkpoint(agent="bot", name="empty")
    engine.add_many(["a", "b"], agent="bot")
    report = engine.rollback(agent="bot", name="empty")
    assert (report.memories, report.removed) == (0, 2)
    assert engine.count(agent="bot") == 0 and engine.count(agent="zed") == 1


@pytest.mark.s3
def test_list_names_and_reopen(engine: MemoryEngine, store_path) -> None:
    engine.add("one", agent="a:b@c.d")
    engine.checkpoint(agent="a:b@c.d", name="first_try.v1")
    engine.add("two", agent="a:b@c.d")
    engine.checkpoint(agent="a:b@c.d", name="x" * 128)
    engine.checkpoint(agent="other", name="first_try.v1")
    engine.close()
    with MemoryEngine.open(store_path, embedder="hashing", read_only=True) as ro:
        found = ro.checkpoints(agent="a:b@c.d")
        assert [(c.name, c.memories) for c in found] == [("first_try.v1", 1), ("x" * 128, 2)]
        assert found[0].version < found[1].version
        assert [c.name for c in ro.checkpoints(agent="other")] == ["first_try.v1"]
        assert ro.checkpoints(agent="nobody") == []
        with pytest.raises(ReadOnlyError):
            ro.checkpoint(agent="a:b@c.d", name="v3")


def test_errors(engine: MemoryEngine) -> None:
    engine.add("one", agent="bot")
    engine.checkpoint(agent="bot", name="v1")
    with pytest.raises(ValidationError, match="already has a checkpoint 'v1'"):
        engine.checkpoint(agent="bot", name="v1")
    with pytest.raises(NotFoundError, match=r"no checkpoint 'v2' \(it has: v1\)"):
        engine.rollback(agent="bot", name="v2")
    with pytest.raises(NotFoundError):
        delete_checkpoint(engine, agent="bot", name="v2")
    with pytest.raises(ValidationError, match="checkpoint name"):
        engine.checkpoint(agent="bot", name="no/slashes")
    with pytest.raises(ValidationError, match="too long"):
        engine.checkpoint(agent="bot", name="." * 10 + "_" * 100)
    with pytest.raises(ValidationError, match="keep"):
        create_checkpoint(engine, agent="bot", name="v9", keep=0)


def test_retention_keeps_the_newest_and_delete_frees(engine: MemoryEngine) -> None:
    for i in range(4):
        engine.add(f"memory {i}", agent="bot")
        create_checkpoint(engine, agent="bot", name=f"v{i}", keep=3)
    assert [c.name for c in list_checkpoints(engine, agent="bot")] == ["v1", "v2", "v3"]
    delete_checkpoint(engine, agent="bot", name="v2")
    assert [c.name for c in list_checkpoints(engine, agent="bot")] == ["v1", "v3"]
    tags = engine.table.table.tags.list()
    assert len(tags) == 2


def _age(engine: MemoryEngine, version: int) -> timedelta:
    stamp = {v["version"]: v["timestamp"] for v in engine.table.versions()}[version]
    return datetime.now(UTC) - stamp.replace(tzinfo=UTC)


@pytest.mark.s3
def test_deleted_checkpoint_is_cleaned_and_kept_one_rolls_back(engine: MemoryEngine) -> None:
    engine.add("one", agent="bot")
    dropped = engine.checkpoint(agent="bot", name="dropped").version
    time.sleep(1.0)
    engine.add("two", agent="bot")
    kept = engine.checkpoint(agent="bot", name="kept").version
    engine.add("three", agent="bot")
    delete_checkpoint(engine, agent="bot", name="dropped")
    # clean every version older than the kept checkpoint (LanceDB refuses to clean a
    # tagged version, so the cut-off must spare it)
    engine.table.table.optimize(cleanup_older_than=_age(engine, kept) + timedelta(seconds=0.3))
    versions = {v["version"] for v in engine.table.versions()}
    assert dropped not in versions and kept in versions
    assert rollback_checkpoint(engine, agent="bot", name="kept").memories == 2
    assert sorted(m.text for m in engine.list(agent="bot")) == ["one", "two"]


@pytest.mark.filterwarnings("ignore:optimize:UserWarning")
def test_tagged_version_blocks_a_plain_cleanup(engine: MemoryEngine) -> None:
    engine.add("one", agent="bot")
    engine.checkpoint(agent="bot", name="v1")
    engine.add("two", agent="bot")
    with pytest.raises(RuntimeError, match="tagged version"):
        engine.table.table.optimize(cleanup_older_than=timedelta(0))
    assert engine.rollback(agent="bot", name="v1").memories == 1


@pytest.mark.s3
def test_compaction_after_an_old_checkpoint(engine: MemoryEngine) -> None:
    engine.add("one", agent="bot")
    engine.checkpoint(agent="bot", name="v1")
    engine.add("two", agent="bot")
    engine.table.retention = timedelta(seconds=0.2)  # ten minutes in real life
    time.sleep(0.5)
    engine.compact()
    assert engine.rollback(agent="bot", name="v1").memories == 1


def test_checkpoint_time_is_utc(engine: MemoryEngine) -> None:
    engine.add("one", agent="bot")
    before = datetime.now(UTC) - timedelta(seconds=5)
    cp = engine.checkpoint(agent="bot", name="now")
    assert before <= cp.created_at <= datetime.now(UTC) + timedelta(seconds=5)
