"""The access log: counts appended beside the memories table, laid over reads, folded in."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from engramdb import MemoryEngine
from engramdb.config import Settings
from engramdb.store.access import AccessTable

TEXTS = [f"note {i} about the garden and the {i % 3} tomatoes" for i in range(12)]
HANG = 120.0
"""Seconds a thread may take before the test calls it hung (a hang detector, not a timing)."""


def _table_counts(engine: MemoryEngine) -> dict[str, int]:
    """The memories table's own counts, the access log left out."""
    rows = engine.table.table.search().select(["id", "access_count"]).limit(None).to_arrow()
    return dict(
        zip(rows.column("id").to_pylist(), rows.column("access_count").to_pylist(), strict=True)
    )


def _counts(engine: MemoryEngine, agent: str = "a") -> dict[str, int]:
    return {m.id: m.access_count for m in engine.list(agent=agent, limit=None)}


def _recall(engine: MemoryEngine, times: int) -> dict[str, int]:
    """Recall ``times`` times; how often each memory was a hit."""
    seen: dict[str, int] = {}
    for i in range(times):
        for hit in engine.recall(f"note {i % 12} garden", agent="a", k=3):
            seen[hit.memory.id] = seen.get(hit.memory.id, 0) + 1
    return seen


def _expected(ids: list[str], *seen: dict[str, int]) -> dict[str, int]:
    out = dict.fromkeys(ids, 0)
    for part in seen:
        for mid, n in part.items():
            out[mid] += n
    return out


def test_a_flush_appends_to_the_log_and_leaves_the_table_alone(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        ids = [m.id for m in engine.add_many(TEXTS, agent="a")]
        version = engine.table.version
        seen = _recall(engine, 5)
        engine.flush()
        assert engine.table.version == version  # no commit on the memories table
        assert engine.table.access.rows == len(seen)
        assert set(_table_counts(engine).values()) == {0}
        # Reads from the store see the logged counts.
        stored = engine.table.scan(columns=["id", "access_count"])
        assert dict(zip(*stored.to_pydict().values(), strict=True)) == _expected(ids, seen)
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        assert _counts(engine) == _expected(ids, seen)
        assert engine.get(next(iter(seen))).last_accessed_at is not None
        more = _recall(engine, 4)  # counts keep growing from the logged ones
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        assert _counts(engine) == _expected(ids, seen, more)


def test_the_background_writer_never_commits_to_the_table(store_path: Path) -> None:
    settings = Settings(access_flush_every=1, access_flush_interval=0.0)
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as engine:
        engine.add_many(TEXTS, agent="a")
        version = engine.table.version
        wrote = threading.Event()
        engine._access.before_write = wrote.set
        engine.recall("garden", agent="a", k=3)
        assert wrote.wait(HANG), "the background writer never wrote"
        for _ in range(400):  # bounded: until the write has landed
            if engine.table.access.rows:
                break
            threading.Event().wait(0.05)
        assert engine.table.access.rows == 3
        assert engine.table.version == version


def test_a_fold_moves_the_counts_into_the_table(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        ids = [m.id for m in engine.add_many(TEXTS, agent="a")]
        seen = _recall(engine, 6)
        engine.compact()  # flushes, folds, compacts
        assert engine.table.access.rows == 0
        assert _table_counts(engine) == _expected(ids, seen)
        more = _recall(engine, 3)
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        assert _counts(engine) == _expected(ids, seen, more)
        engine.compact()
        assert _table_counts(engine) == _expected(ids, seen, more)


def test_a_fold_killed_between_its_steps_leaves_the_counts_right(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(self: AccessTable, where: str | None = None) -> None:
        raise KeyboardInterrupt("killed between the fold's merge and the log's truncation")

    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        ids = [m.id for m in engine.add_many(TEXTS, agent="a")]
        seen = _recall(engine, 6)
        engine.flush()
        with monkeypatch.context() as patch:
            patch.setattr(AccessTable, "clear", killed)
            with pytest.raises(KeyboardInterrupt):
                engine.table.fold_access()
        # Both the table and the log hold the counts now.
        assert _table_counts(engine) == _expected(ids, seen)
        assert engine.table.access.rows == len(seen)
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        assert _counts(engine) == _expected(ids, seen)  # not counted twice
        more = _recall(engine, 3)
        engine.compact()
        assert _table_counts(engine) == _expected(ids, seen, more)
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        assert _counts(engine) == _expected(ids, seen, more)


def test_the_background_writer_folds_a_long_log(store_path: Path) -> None:
    settings = Settings(access_flush_every=1, access_flush_interval=0.0)
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as engine:
        ids = [m.id for m in engine.add_many(TEXTS, agent="a")]
        engine._access.fold_rows = 2
        version = engine.table.version
        seen = _recall(engine, 1)
        for _ in range(400):  # bounded: until the background fold has landed
            if engine.table.version != version and not engine.table.access.rows:
                break
            threading.Event().wait(0.05)
        assert engine.table.access.rows == 0
        assert _table_counts(engine) == _expected(ids, seen)


def test_rollback_restores_the_checkpoints_counts_over_newer_logged_ones(
    store_path: Path,
) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        ids = [m.id for m in engine.add_many(TEXTS, agent="a")]
        seen = _recall(engine, 4)
        engine.checkpoint(agent="a", name="c")
        assert _table_counts(engine) == _expected(ids, seen)  # the tagged version holds them
        _recall(engine, 8)
        engine.flush()
        assert engine.table.access.rows  # newer counts in the log
        engine.rollback(agent="a", name="c")
        assert _counts(engine) == _expected(ids, seen)
        assert engine.table.access.rows == 0
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        assert _counts(engine) == _expected(ids, seen)


def test_a_memory_deleted_and_imported_again_takes_the_snapshots_counts(
    store_path: Path, tmp_path: Path
) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        ids = [m.id for m in engine.add_many(TEXTS, agent="a")]
        engine.export_snapshot(tmp_path / "a.snap", agent="a")  # every count 0
        seen = _recall(engine, 5)
        engine.flush()
        for mid in seen:
            engine.delete(mid, agent="a")
        engine.import_snapshot(tmp_path / "a.snap", mode="merge")
        assert _counts(engine) == dict.fromkeys(ids, 0)
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        assert _counts(engine) == dict.fromkeys(ids, 0)


def test_a_logged_count_applies_only_to_the_memory_created_when_it_was(
    store_path: Path,
) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        memory = engine.add("the only memory", agent="a")
        engine.recall("the only memory", agent="a", k=1)
        engine.flush()
        row = engine.table.fetch([memory.id])
        assert row.column("access_count").to_pylist() == [1]
        # The same id again, created a second later (as a store edited by hand could hold).
        engine.table.delete([memory.id])
        created = row.column("created_at").cast(pa.int64()).to_pylist()[0] + 1_000_000
        again = row.set_column(
            row.column_names.index("created_at"),
            "created_at",
            pa.array([created], pa.int64()).cast(row.schema.field("created_at").type),
        ).set_column(row.column_names.index("access_count"), "access_count", pa.array([0]))
        engine.table.add_rows(again.cast(engine.table.schema))
        assert engine.table.fetch([memory.id]).column("access_count").to_pylist() == [0]
        engine.invalidate()
        assert engine.get(memory.id).access_count == 0
        engine.recall("the only memory", agent="a", k=1)
        engine.flush()  # the log holds the id twice now, one row per creation time
        engine.compact()  # the fold applies only the new memory's row
        assert _table_counts(engine) == {memory.id: 1}


def test_a_reader_sees_logged_counts(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with MemoryEngine.open(path, embedder="hashing") as writer:
        ids = [m.id for m in writer.add_many(TEXTS, agent="a")]
        with MemoryEngine.open(path, embedder="hashing", read_only=True) as reader:
            assert _counts(reader) == dict.fromkeys(ids, 0)  # its view is loaded
            seen = _recall(writer, 5)
            writer.flush()
            assert _counts(reader) == _expected(ids, seen)
            writer.compact()  # the fold commits to the table and empties the log
            assert _counts(reader) == _expected(ids, seen)
            more = _recall(writer, 2)
            writer.flush()
            assert _counts(reader) == _expected(ids, seen, more)
        with MemoryEngine.open(path, embedder="hashing", read_only=True) as fresh:
            assert _counts(fresh) == _expected(ids, seen, more)


@pytest.mark.s3
def test_the_log_on_every_store_kind(store_path: Path) -> None:
    settings = Settings(version_retention=timedelta(0))
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as engine:
        ids = [m.id for m in engine.add_many(TEXTS, agent="a")]
        version = engine.table.version
        seen = _recall(engine, 4)
        engine.flush()
        assert engine.table.version == version
        assert engine.table.access.rows == len(seen)
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as engine:
        assert _counts(engine) == _expected(ids, seen)
        engine.compact()
        assert engine.table.access.rows == 0
        assert _table_counts(engine) == _expected(ids, seen)


def test_stats_count_the_unfolded_log_rows(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        engine.add_many(TEXTS, agent="a")
        assert engine.stats().access_log_rows == 0
        seen = _recall(engine, 3)
        engine.flush()
        assert engine.stats().access_log_rows == len(seen)
        engine.compact()
        assert engine.stats().access_log_rows == 0


def test_a_view_read_from_the_index_cache_takes_the_logged_counts(store_path: Path) -> None:
    settings = Settings(exact_threshold=4)  # 12 memories: an HNSW graph, cached
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as engine:
        ids = [m.id for m in engine.add_many(TEXTS, agent="a")]
        seen = _recall(engine, 5)
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as engine:
        assert _counts(engine) == _expected(ids, seen)
        assert engine.stats().views["a"].source.startswith("cache")


def test_close_folds_a_long_log_and_a_reader_never_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engramdb.engine.engine.FOLD_ON_CLOSE", 1)
    path = tmp_path / "store"
    writer = MemoryEngine.open(path, embedder="hashing")
    ids = [m.id for m in writer.add_many(TEXTS, agent="a")]
    seen = _recall(writer, 4)
    writer.flush()
    with MemoryEngine.open(path, embedder="hashing", read_only=True) as reader:
        assert reader.table.access.rows == len(seen)
    assert writer.table.access.rows == len(seen)  # the reader's close wrote nothing
    writer.close()
    with MemoryEngine.open(path, embedder="hashing") as engine:
        assert engine.table.access.rows == 0
        assert _table_counts(engine) == _expected(ids, seen)
