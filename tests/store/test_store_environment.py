"""The file system refuses: a full disk and a read-only mount give engramdb errors.

These mount a small tmpfs, so they run as root (and skip, saying why, otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import MemoryEngine
from engramdb.errors import StoreIOError


def _mount(path: Path, *options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)],
                   check=True, capture_output=True)  # fmt: skip


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted at a fresh directory, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        _mount(mnt, "size=4m")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def _fill(path: Path) -> Path:
    """Write a file until the file system is full; return it (delete it to free space)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 512):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_full_disk(small_fs: Path) -> None:
    root = small_fs / "store"
    engine = MemoryEngine.open(root, embedder="hashing")
    engine.add("lasting memory", agent="a")
    expiring = engine.add("short-lived", agent="a", ttl=0.2)
    engine.recall("lasting", agent="a")  # an access waiting to be flushed
    engine.invalidate()
    filler = _fill(small_fs)
    time.sleep(0.3)
    with pytest.raises(StoreIOError, match="disk is full") as info:
        engine.add("does not fit", agent="a", metadata={"pad": "x" * 4000})
    assert info.value.errno == errno.ENOSPC and str(root) in str(info.value)
    assert info.value.__cause__ is not None
    # reads go on: building the view could not purge the expired row, and need not
    assert engine.count(agent="a") == 1
    assert [h.memory.text for h in engine.recall("lasting", agent="a")] == ["lasting memory"]
    with pytest.raises(StoreIOError):
        engine.close()  # the access counts cannot be written...
    filler.unlink()
    with MemoryEngine.open(root, embedder="hashing") as again:  # ...but the lock was released
        assert [m.text for m in again.list(agent="a")] == ["lasting memory"]
        assert expiring.id not in {m.id for m in again.list(agent="a")}


def test_read_only_mount(small_fs: Path) -> None:
    root = small_fs / "store"
    with MemoryEngine.open(root, embedder="hashing") as engine:
        engine.add("kept", agent="a")
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True, capture_output=True)
    with pytest.raises(StoreIOError, match="read-only") as info:
        MemoryEngine.open(root, embedder="hashing")
    assert "read_only=True" in str(info.value)
    with MemoryEngine.open(root, embedder="hashing", read_only=True) as reader:
        assert [m.text for m in reader.list(agent="a")] == ["kept"]
    with pytest.raises(StoreIOError, match="read-only"):
        MemoryEngine.open(small_fs / "new-store", embedder="hashing")
