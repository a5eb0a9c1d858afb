"""Shared fixtures: every test runs offline, CPU-only, in its own temporary store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default data directory at tmp_path and keep everything offline."""
    monkeypatch.setenv("ENGRAMDB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


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
