"""Opening a store: readers create nothing, and a damaged store fails loudly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engramdb import MemoryEngine, NotFoundError
from engramdb.errors import (
    EngramError,
    ReadOnlyError,
    StoreCorruptError,
    StoreFormatError,
    StoreIOError,
    ValidationError,
)
from engramdb.store.meta import META_FILE, write_meta
from engramdb.store.table import LANCE_DIR, MemoryTable, table_dir


def _store(path: Path, n: int = 3, **kwargs: object) -> Path:
    with MemoryEngine.open(path, embedder="hashing", **kwargs) as engine:  # type: ignore[arg-type]
        for i in range(n):
            engine.add(f"memory number {i}", agent="a")
    return path


def _meta_of(path: Path) -> dict[str, object]:
    meta: dict[str, object] = json.loads((path / META_FILE).read_text())
    return meta


# -- 4. a reader writes nothing ---------------------------------------------------------------


def test_reader_in_the_creation_window_creates_nothing(tmp_path: Path) -> None:
    """The race: a writer has written the metadata file but not yet the table (as the
    old creation order did); a reader opening then used to create the table itself."""
    done = _store(tmp_path / "done", n=0)
    root = tmp_path / "race"
    root.mkdir()
    shutil.copy(done / META_FILE, root / META_FILE)
    with pytest.raises(NotFoundError, match="may still be creating it"):
        MemoryEngine.open(root, embedder="hashing", read_only=True)
    assert not (root / LANCE_DIR).exists()
    assert sorted(p.name for p in root.iterdir()) == [META_FILE]


def test_reader_before_the_metadata_file_then_writer_completes(tmp_path: Path) -> None:
    """Now the table comes first: a reader between table and metadata file finds no
    store and creates nothing; the writer's creation then completes."""
    root = tmp_path / "s"
    root.mkdir()
    MemoryTable(root, 256, create=True)  # the writer, stopped before its metadata file
    with pytest.raises(NotFoundError):
        MemoryEngine.open(root, embedder="hashing", read_only=True)
    assert not (root / META_FILE).exists()
    with MemoryEngine.open(root, embedder="hashing") as engine:
        engine.add("written after the interrupted creation", agent="a")
    with MemoryEngine.open(root, embedder="hashing", read_only=True) as reader:
        assert reader.count(agent="a") == 1


def test_read_only_table_refuses_every_write(tmp_path: Path) -> None:
    root = _store(tmp_path / "s")
    table = MemoryTable(root, 256, read_only=True)
    version = table.version
    for call in (table.compact, lambda: table.delete(["x"]), lambda: table.create_tag("t", 1)):
        with pytest.raises(ReadOnlyError):
            call()
    with pytest.raises(ReadOnlyError):
        MemoryTable(root / "new", 256, read_only=True, create=True)
    assert table.version == version
    assert not (root / "new").exists()


def test_reader_never_purges_expired_rows(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with MemoryEngine.open(root, embedder="hashing") as engine:
        engine.add("short-lived", agent="a", ttl=0.05)
        engine.add("lasting", agent="a")
    import time

    time.sleep(0.1)
    with MemoryEngine.open(root, embedder="hashing", read_only=True) as reader:
        version = reader.store.version
        assert reader.count(agent="a") == 1
        assert reader.store.count() == 2
        assert reader.store.version == version


# -- 5. damage fails loudly -------------------------------------------------------------------


def test_table_gone_is_corrupt_not_a_new_store(tmp_path: Path) -> None:
    root = _store(tmp_path / "s")
    shutil.rmtree(root / LANCE_DIR)
    with pytest.raises(StoreCorruptError, match=r"table .* is missing") as info:
        MemoryEngine.open(root, embedder="hashing")
    assert "snapshot" in str(info.value)
    assert not (root / LANCE_DIR).exists()  # nothing was created in its place


def test_missing_metadata_file_is_corrupt_not_rewritten(tmp_path: Path) -> None:
    root = _store(tmp_path / "s", space="poincare")
    (root / META_FILE).unlink()
    with pytest.raises(StoreCorruptError, match="no metadata file"):
        MemoryEngine.open(root, embedder="hashing")  # euclidean: would have rewritten it
    assert not (root / META_FILE).exists()


@pytest.mark.parametrize(
    "text",
    ['{"format": 1}', "[1]", "not json", '{"format": 1, "embedder": {"name": 3}}', "\xff"],
)
def test_damaged_metadata_file_is_corrupt(tmp_path: Path, text: str) -> None:
    root = _store(tmp_path / "s")
    (root / META_FILE).write_text(text, errors="surrogateescape")
    with pytest.raises(StoreCorruptError, match=r"engramdb\.json"):
        MemoryEngine.open(root, embedder="hashing")


def test_newer_format_is_still_a_format_error(tmp_path: Path) -> None:
    root = _store(tmp_path / "s")
    meta = _meta_of(root)
    meta["format"] = 99
    write_meta(root, meta)
    with pytest.raises(StoreFormatError, match="upgrade"):
        MemoryEngine.open(root, embedder="hashing")


def test_damaged_data_file_is_corrupt_with_the_cause_chained(tmp_path: Path) -> None:
    root = _store(tmp_path / "s")
    data = next((table_dir(root) / "data").iterdir())
    data.write_bytes(b"garbage" * 10)
    with pytest.raises(StoreCorruptError, match="cannot read rows in store") as info:
        with MemoryEngine.open(root, embedder="hashing") as engine:
            engine.count(agent="a")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert str(root) in str(info.value)


def test_missing_versions_dir_is_corrupt(tmp_path: Path) -> None:
    root = _store(tmp_path / "s")
    shutil.rmtree(table_dir(root) / "_versions")
    with pytest.raises(StoreCorruptError, match="open the table"):
        MemoryEngine.open(root, embedder="hashing")


def test_exit_keeps_the_error_in_flight_when_close_fails(tmp_path: Path) -> None:
    engine = MemoryEngine.open(tmp_path / "s", embedder="hashing")
    engine.add("x", agent="a")

    def failing_flush() -> None:
        raise StoreIOError(28, "cannot write access counts: the disk is full")

    engine._access.flush = failing_flush  # type: ignore[method-assign]
    with pytest.raises(KeyError, match="original") as info:
        with engine:
            raise KeyError("original")
    assert any("closing the engine also failed" in n for n in info.value.__notes__)
    assert engine.read_only is False and "closed" in repr(engine)
    # without an error in flight the close failure is raised, and the engine is closed
    engine2 = MemoryEngine.open(tmp_path / "s", embedder="hashing")
    engine2._access.flush = failing_flush  # type: ignore[method-assign]
    with pytest.raises(StoreIOError), engine2:
        pass
    MemoryEngine.open(tmp_path / "s", embedder="hashing").close()  # the lock was released


# -- 7. paths -------------------------------------------------------------------------------


def test_path_under_a_file_is_an_engram_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreIOError, match="is a file"):
        MemoryEngine.open(tmp_path / "f" / "store", embedder="hashing")


def test_path_with_a_newline_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        MemoryEngine.open(tmp_path / "a\nb", embedder="hashing")
    assert [p.name for p in tmp_path.iterdir()] == ["tmp"]  # the test's own $TMPDIR


def test_bad_embedder_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(EngramError):
        MemoryEngine.open(tmp_path / "s", embedder=str(tmp_path / "no-such-model"))
    assert not (tmp_path / "s").exists()
