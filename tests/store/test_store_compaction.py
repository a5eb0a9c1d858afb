"""Compaction in size tiers: a pass never rewrites the whole table, and keeps checkpoints."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from engramdb import MemoryEngine, Settings
from engramdb.store.table import MemoryTable


def _fragments(engine: MemoryEngine) -> list[tuple[int, int]]:
    ds = engine.store.table.to_lance()
    return [(f.fragment_id, f.metadata.physical_rows) for f in ds.get_fragments()]


def test_compaction_leaves_large_fragments_alone(tmp_path: Path) -> None:
    with MemoryEngine.open(tmp_path / "s", embedder="hashing") as engine:
        engine.add_many([f"bulk memory {i}" for i in range(3000)], agent="a")
        big = _fragments(engine)
        assert [rows for _, rows in big] == [3000]
        for i in range(10):
            engine.add(f"single memory {i}", agent="a")
        engine.compact()
        after = _fragments(engine)
        # the 3,000-row fragment is untouched (same id); the ten one-row ones became one
        assert after == [big[0], (after[1][0], 10)]
        assert engine.count(agent="a") == 3010


def test_cleanup_drops_old_versions_but_keeps_checkpoints(tmp_path: Path) -> None:
    settings = Settings(version_retention=timedelta(0))
    with MemoryEngine.open(tmp_path / "s", embedder="hashing", settings=settings) as engine:
        engine.add("one", agent="a")
        tagged = engine.checkpoint(agent="a", name="v1").version
        for i in range(20):
            engine.add(f"more {i}", agent="a")
        engine.compact()
        versions = [v["version"] for v in engine.store.versions()]
        assert versions == [tagged, engine.store.version]
        assert engine.rollback(agent="a", name="v1").memories == 1
        assert [m.text for m in engine.list(agent="a")] == ["one"]


def test_single_writes_keep_the_fragment_count_bounded(tmp_path: Path) -> None:
    settings = Settings(compact_every=8, version_retention=timedelta(0))
    with MemoryEngine.open(tmp_path / "s", embedder="hashing", settings=settings) as engine:
        for i in range(200):
            engine.add(f"single memory {i}", agent="a")
        assert len(_fragments(engine)) <= 8
        assert len(engine.store.versions()) <= 8
        assert engine.count(agent="a") == 200


def test_reader_whose_version_was_cleaned_up_reads_the_newest(tmp_path: Path) -> None:
    settings = Settings(version_retention=timedelta(0))
    root = tmp_path / "s"
    with MemoryEngine.open(root, embedder="hashing", settings=settings) as writer:
        for i in range(5):
            writer.add(f"memory {i}", agent="a")  # five one-row fragments
        reader = MemoryTable(root, writer.embedder.dim, read_only=True)
        assert reader.count() == 5
        writer.add("one more", agent="a")
        writer.compact()  # rewrites the fragments the reader's version reads, cleans it
        assert len(reader.scan(columns=["id"])) == 6
