"""A read-only engine follows a writer by applying what changed, not by rebuilding."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from engramdb import MemoryEngine

QUERY = "garden roses watering"


def _hits(engine: MemoryEngine, agent: str = "a") -> list[tuple[str, str]]:
    hits = engine.recall(QUERY, agent=agent, k=8, record_access=False)
    return [(h.memory.id, h.memory.text) for h in hits]


def _fresh(path: Path, agent: str = "a") -> list[tuple[str, str]]:
    with MemoryEngine.open(path, embedder="hashing", read_only=True) as fresh:
        return _hits(fresh, agent)


@pytest.fixture
def pair(tmp_path: Path):
    path = tmp_path / "store"
    writer = MemoryEngine.open(path, embedder="hashing")
    writer.add_many(
        [
            {"text": f"garden note {i} on roses and watering", "session": f"s{i % 3}"}
            for i in range(30)
        ],
        agent="a",
    )
    writer.add_many(["another agent's garden"], agent="b")
    reader = MemoryEngine.open(path, embedder="hashing", read_only=True)
    yield path, writer, reader
    reader.close()
    writer.close()


def test_each_kind_of_write_is_applied_in_place(pair) -> None:
    path, writer, reader = pair
    assert _hits(reader) == _fresh(path)
    view = reader._views.loaded("a")
    memories = writer.list(agent="a", limit=None)
    steps = [
        lambda: writer.add("a new garden memory about roses", agent="a", session="s1"),
        lambda: writer.update(memories[0].id, text="roses need watering at dawn"),
        lambda: writer.update(memories[1].id, importance=0.9, metadata={"pinned": True}),
        lambda: writer.delete(memories[2].id),
        lambda: (writer.recall(QUERY, agent="a", k=5), writer.flush()),
        lambda: writer.add("only agent b changes", agent="b"),
        lambda: writer.consolidate(agent="a"),
        lambda: writer.compact(),
    ]
    for step in steps:
        step()
        assert _hits(reader) == _fresh(path)
        assert reader._views.loaded("a") is view  # followed, not rebuilt
    assert reader.count(agent="a") == writer.count(agent="a")


def test_access_counts_reach_the_reader_without_a_rebuild(pair) -> None:
    _, writer, reader = pair
    first = writer.list(agent="a", limit=1)[0]
    reader.recall(QUERY, agent="a")
    view = reader._views.loaded("a")
    writer.get(first.id)
    for _ in range(3):
        writer.recall(first.text, agent="a", k=1)
    writer.flush()
    assert reader.get(first.id, agent="a").access_count == writer.get(first.id).access_count
    assert reader._views.loaded("a") is view


def test_a_reader_rebuilds_when_the_versions_it_held_are_gone(pair) -> None:
    path, writer, reader = pair
    reader.recall(QUERY, agent="a")
    writer.add("a memory written before the cleanup", agent="a")
    with pytest.warns(UserWarning, match="removes every version"):
        writer.store.table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
    writer.add("and one after it", agent="a")
    assert _hits(reader) == _fresh(path)
    assert "and one after it" in [m.text for m in reader.list(agent="a", limit=None)]


def _refreshes(engine: MemoryEngine, monkeypatch) -> list[int]:
    """A list that grows by one each time the engine asks LanceDB for the newest version."""
    store = engine._views.store
    calls: list[int] = []
    real = store.refresh
    monkeypatch.setattr(store, "refresh", lambda: (calls.append(1), real())[1])
    return calls


def test_an_idle_local_reader_asks_lancedb_only_after_a_commit(pair, monkeypatch) -> None:
    from engramdb.store import watch

    path, writer, reader = pair
    monkeypatch.setattr(watch, "RACY_SECONDS", 0.05)  # file times older than this are trusted
    calls = _refreshes(reader, monkeypatch)
    assert _hits(reader) == _fresh(path)
    time.sleep(0.2)
    _hits(reader)  # follows once more: the last look was too recent to trust
    calls.clear()
    for _ in range(3):
        assert _hits(reader) == _fresh(path)
    assert calls == []  # nothing committed: the table directories said so
    new = writer.add("a fresh garden memory about roses and watering", agent="a")
    found = reader.recall(QUERY, agent="a", k=50, record_access=False)
    assert calls  # the commit changed a directory: LanceDB was asked
    assert new.id in {h.memory.id for h in found}
    assert _hits(reader) == _fresh(path)


def test_a_follow_interval_of_zero_asks_lancedb_on_every_call(pair, monkeypatch) -> None:
    from engramdb import Settings
    from engramdb.store import watch

    path, _, _ = pair
    monkeypatch.setattr(watch, "RACY_SECONDS", 0.0)
    settings = Settings(follow_interval=timedelta(0))
    with MemoryEngine.open(path, embedder="hashing", read_only=True, settings=settings) as reader:
        calls = _refreshes(reader, monkeypatch)
        for _ in range(3):
            _hits(reader)
        assert len(calls) == 3
