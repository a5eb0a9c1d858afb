"""Shared fixtures: every test runs offline, CPU-only, in its own temporary store."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default data directory at tmp_path and keep everything offline.

    The temporary directory too: what the test, its libraries and its child
    processes put in $TMPDIR goes when tmp_path goes, even from a process the test
    kills (LanceDB's storage layer leaves a .tmpXXXXXX behind when killed mid-write).
    """
    monkeypatch.setenv("ENGRAMDB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def engine(store_path: Path) -> Iterator[object]:
    """A writable engine on the hashing embedder in a fresh store."""
    from engramdb import MemoryEngine

    eng = MemoryEngine.open(store_path, embedder="hashing")
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="session")
def minilm() -> object:
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from engramdb.embeddings import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(threads=2)
    emb.embed(["warm up"])
    return emb
