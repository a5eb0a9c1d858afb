"""Doctests: the docstring examples in ``engramdb/`` run against a small, fresh store.

Each example runs in its own temporary directory (so ``"./memory"`` and
``"bot.egm"`` land there) with ``engine`` (the agent ``bot`` holds three
memories), ``other`` (an empty store) and ``engramdb`` in its namespace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

MODEL_DOCTESTS = {"engramdb", "engramdb.embeddings.sentence.SentenceTransformerEmbedder"}
"""Doctests that load the bundled model (the package's example opens the default embedder)."""

BOT_MEMORIES = (
    "The user prefers window seats",
    "The user is vegetarian",
    "Always answer in French",
)


@pytest.fixture(autouse=True)
def _doctest_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import engramdb
    from engramdb import MemoryEngine

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENGRAMDB_HOME", str(tmp_path / "home"))
    namespace: dict[str, Any] = request.getfixturevalue("doctest_namespace")
    with (
        MemoryEngine.open(tmp_path / "engine", embedder="hashing") as engine,
        MemoryEngine.open(tmp_path / "other", embedder="hashing") as other,
    ):
        engine.add_many(list(BOT_MEMORIES), agent="bot", kind="semantic")
        namespace.update(engine=engine, other=other, engramdb=engramdb)
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.name in MODEL_DOCTESTS:
            item.add_marker(pytest.mark.model)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _caches_in_basetemp(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Importing sentence-transformers makes torch create $TMPDIR/torchinductor_<user>;
    # inside pytest's base directory it goes when the run ends, with everything else.
    os.environ.setdefault(
        "TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "torchinductor")
    )
