"""Access counts: written by a background thread, never on the query's; flushed on close."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from engramdb import MemoryEngine
from engramdb.config import Settings

TEXTS = [f"note {i} about the garden and the {i % 3} tomatoes" for i in range(12)]
HANG = 120.0
"""Seconds a thread may take before the test calls it hung (a hang detector, not a timing)."""


def _stored_counts(engine: MemoryEngine) -> dict[str, int]:
    rows = engine.table.scan(columns=["id", "access_count"])
    return dict(
        zip(rows.column("id").to_pylist(), rows.column("access_count").to_pylist(), strict=True)
    )


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("engramdb-access-")]


def test_counts_reach_the_store_on_flush_and_close_and_survive_reopen(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        mems = engine.add_many(TEXTS, agent="a")
        hits = engine.recall("garden tomatoes", agent="a", k=3)
        assert all(v == 0 for v in _stored_counts(engine).values())  # buffered, not written
        engine.flush()
        stored = _stored_counts(engine)
        assert {h.memory.id for h in hits} == {mid for mid, c in stored.items() if c == 1}
        again = engine.recall("garden tomatoes", agent="a", k=3)
    # close() wrote the second recall's counts without a flush() call
    expected = {m.id: 0 for m in mems}
    for hit in [*hits, *again]:
        expected[hit.memory.id] += 1
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        assert _stored_counts(engine) == expected
        for mid, count in expected.items():
            assert engine.get(mid).access_count == count
            assert (engine.get(mid).last_accessed_at is None) == (count == 0)


def test_recall_is_not_blocked_by_a_slow_write(store_path: Path) -> None:
    settings = Settings(access_flush_every=2)
    engine = MemoryEngine.open(store_path, embedder="hashing", settings=settings)
    try:
        engine.add_many(TEXTS, agent="a")
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:  # the writer holds the store's write lock here
            inside.set()
            release.wait(HANG)

        engine._access.before_write = hold
        engine.recall("garden", agent="a", k=3)  # 3 memories buffered: the writer wakes
        assert inside.wait(HANG), "the background writer never started its write"
        done: list[int] = []

        def reader() -> None:
            for i in range(20):
                hits = engine.recall(f"note {i % 12} tomatoes", agent="a", k=4)
                done.append(len(hits))
            done.append(len(engine.list(agent="a", limit=None)))

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(HANG)
        hung = thread.is_alive()
        assert release.is_set() is False
        stored_while_held = _stored_counts(engine)
        release.set()
        thread.join(HANG)
        assert not hung, "recall waited for the access-count write"
        assert done == [4] * 20 + [len(TEXTS)]
        assert all(v == 0 for v in stored_while_held.values())  # the held write had not landed
    finally:
        release.set()
        engine.close()
    assert not _writer_threads()
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        total = sum(_stored_counts(engine).values())
    assert total == 3 + 20 * 4  # every access, whichever write carried it


def test_a_full_buffer_drops_new_entries_instead_of_waiting(store_path: Path) -> None:
    settings = Settings(access_flush_every=1)
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as engine:
        mems = engine.add_many(TEXTS, agent="a")
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            inside.set()
            release.wait(HANG)

        log = engine._access
        log.capacity = 2
        log.before_write = hold
        engine.recall("note 0", agent="a", k=1)
        assert inside.wait(HANG)
        hits = engine.recall("garden tomatoes", agent="a", k=5)  # more than the buffer holds
        assert len(hits) == 5
        assert len(log) == 2
        assert log.dropped == 3
        release.set()
        # The counts stay right in memory whatever was written.
        assert sum(engine.get(m.id).access_count for m in mems) == 6


def test_a_reader_never_starts_a_writer(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        engine.add_many(TEXTS, agent="a")
    settings = Settings(access_flush_every=1)
    with MemoryEngine.open(
        store_path, embedder="hashing", read_only=True, settings=settings
    ) as reader:
        for _ in range(3):
            assert reader.recall("garden", agent="a", k=3)
        assert not _writer_threads()
        assert len(reader._access) == 0


def test_background_writes_wait_out_the_interval_and_close_does_not(store_path: Path) -> None:
    settings = Settings(access_flush_every=2, access_flush_interval=3600.0)
    engine = MemoryEngine.open(store_path, embedder="hashing", settings=settings)
    wrote = threading.Event()
    engine._access.before_write = wrote.set
    engine.add_many(TEXTS, agent="a")
    first = engine.recall("garden", agent="a", k=3)  # the first write goes at once
    assert wrote.wait(HANG), "the background writer never wrote"
    for _ in range(200):  # bounded: until the first write has landed
        if sum(_stored_counts(engine).values()) == 3:
            break
        threading.Event().wait(0.05)
    wrote.clear()
    second = engine.recall("note 5 tomatoes", agent="a", k=4)  # wakes the writer again
    assert not wrote.wait(1.0)  # it waits out the hour instead of writing now
    assert sum(_stored_counts(engine).values()) == 3
    closer = threading.Thread(target=engine.close)
    closer.start()
    closer.join(HANG)
    assert not closer.is_alive(), "close() waited for the interval"
    with MemoryEngine.open(store_path, embedder="hashing") as again:
        assert sum(_stored_counts(again).values()) == len(first) + len(second)


@contextlib.contextmanager
def _pausing(
    store_path: Path, *, idle: float, max_wait: float
) -> Iterator[tuple[MemoryEngine, threading.Event]]:
    """An engine whose background writer wakes at every access and waits for ``idle``
    seconds without recall (at most ``max_wait``); the event is set before each write."""
    settings = Settings(
        access_flush_every=1,
        access_flush_interval=0.0,
        access_flush_idle=idle,
        access_flush_max_wait=max_wait,
    )
    engine = MemoryEngine.open(store_path, embedder="hashing", settings=settings)
    try:
        engine.add_many(TEXTS, agent="a")
        wrote = threading.Event()
        engine._access.before_write = wrote.set
        yield engine, wrote
    finally:
        engine.close()


def test_background_writes_wait_for_a_pause_in_recall(store_path: Path) -> None:
    with _pausing(store_path, idle=0.2, max_wait=3600.0) as (engine, wrote):
        with engine._access.busy():  # a recall still running (as a long one would be)
            hits = engine.recall("garden", agent="a", k=3)  # wakes the writer
            assert not wrote.wait(1.0)  # no write while a recall runs
            assert sum(_stored_counts(engine).values()) == 0
        assert wrote.wait(HANG), "the writer never wrote after recall went quiet"
        for _ in range(200):  # bounded: until the write has landed
            if sum(_stored_counts(engine).values()) == len(hits):
                break
            threading.Event().wait(0.05)
        assert sum(_stored_counts(engine).values()) == len(hits)


def test_unbroken_recall_still_gets_its_counts_written_after_the_longest_wait(
    store_path: Path,
) -> None:
    with _pausing(store_path, idle=3600.0, max_wait=0.3) as (engine, wrote):
        with engine._access.busy():  # never quiet for the hour the writer asks for
            engine.recall("garden", agent="a", k=3)
            assert wrote.wait(HANG), "the writer waited past access_flush_max_wait"
    assert not _writer_threads()


def test_close_does_not_wait_for_a_pause(store_path: Path) -> None:
    settings = Settings(
        access_flush_every=1, access_flush_idle=3600.0, access_flush_max_wait=3600.0
    )
    engine = MemoryEngine.open(store_path, embedder="hashing", settings=settings)
    engine.add_many(TEXTS, agent="a")
    with engine._access.busy():
        hits = engine.recall("garden", agent="a", k=3)
    closer = threading.Thread(target=engine.close)
    with engine._access.busy():  # a recall "running" for the writer's whole wait
        closer.start()
        closer.join(HANG)
    assert not closer.is_alive(), "close() waited for a pause in recall"
    with MemoryEngine.open(store_path, embedder="hashing") as again:
        assert sum(_stored_counts(again).values()) == len(hits)


def test_a_half_full_buffer_is_written_without_waiting_for_a_pause(store_path: Path) -> None:
    with _pausing(store_path, idle=3600.0, max_wait=3600.0) as (engine, wrote):
        log = engine._access
        log.capacity = 8
        with log.busy():  # recall never pauses for the hour the writer asks for
            engine.recall("garden", agent="a", k=2)  # 2 of 8 buffered: the writer waits
            assert not wrote.wait(1.0)
            engine.recall("tomatoes", agent="a", k=6)  # half full or more: no more waiting
            assert wrote.wait(HANG), "the writer waited with a half-full buffer"
        assert log.dropped == 0
