"""One error boundary: bad input through any public door raises an engramdb error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engramdb
from engramdb import (
    ConsolidationPolicy,
    EngramError,
    HashingEmbedder,
    MemoryEngine,
    ScoringWeights,
    Settings,
    ValidationError,
)
from engramdb.records import Memory


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    with MemoryEngine.open(tmp_path / "store", embedder="hashing") as eng:
        eng.add("Alice moved to Lisbon", agent="a")
        yield eng


CONSTRUCTORS: list[tuple[str, Callable[[], object]]] = [
    ("Settings threads=0", lambda: Settings(threads=0)),
    ("Settings max_text_bytes=-1", lambda: Settings(max_text_bytes=-1)),
    ("Settings weights bad", lambda: Settings(weights={"similarity": -1})),
    ("ScoringWeights similarity=-1", lambda: ScoringWeights(similarity=-1)),
    ("ScoringWeights half_life_days=0", lambda: ScoringWeights(half_life_days=0)),
    ("policy dedup threshold 2.0", lambda: ConsolidationPolicy(dedup={"threshold": 2.0})),
    ("policy unknown stage", lambda: ConsolidationPolicy(nothing={})),
    (
        "policy cluster sizes",
        lambda: ConsolidationPolicy(cluster={"min_size": 5, "max_size": 3}),
    ),
    (
        "policy forget order",
        lambda: ConsolidationPolicy(forget={"archive_below": 0.1, "delete_below": 0.5}),
    ),
    ("policy summarize path", lambda: ConsolidationPolicy(summarize="no-colon")),
    ("policy from_mapping list", lambda: ConsolidationPolicy.from_mapping([1])),
    ("Memory empty text", lambda: Memory(id="x", agent="a", text=" ")),
    ("HashingEmbedder dim 0", lambda: HashingEmbedder(dim=0)),
    ("open bad space", lambda: MemoryEngine.open("/tmp/x-engram", space="flat-earth")),
    ("open bad index", lambda: MemoryEngine.open("/tmp/x-engram", index="btree")),
    ("manifest of a missing file", lambda: engramdb.read_snapshot_manifest("/nonexistent.egm")),
]


@pytest.mark.parametrize("call", [c for _, c in CONSTRUCTORS], ids=[n for n, _ in CONSTRUCTORS])
def test_bad_constructor_values_raise_engram_errors(call: Callable[[], object]) -> None:
    with pytest.raises(EngramError):
        call()


def test_bad_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAMDB_THREADS", "many")
    with pytest.raises(ValidationError, match="threads"):
        Settings()


CALLS: list[tuple[str, Callable[[Any], object]]] = [
    ("add empty text", lambda e: e.add("", agent="a")),
    ("add bad agent", lambda e: e.add("x", agent="no spaces allowed")),
    ("add bad kind", lambda e: e.add("x", agent="a", kind="dream")),
    ("add importance 2", lambda e: e.add("x", agent="a", importance=2)),
    ("add ttl -1", lambda e: e.add("x", agent="a", ttl=-1)),
    ("add bad vector", lambda e: e.add("x", agent="a", vector=[1.0, 2.0])),
    ("add bad parent", lambda e: e.add("x", agent="a", parent="0" * 26)),
    ("add_many not dicts", lambda e: e.add_many([3], agent="a")),
    ("add_many unknown field", lambda e: e.add_many([{"txt": "x"}], agent="a")),
    ("recall k 0", lambda e: e.recall("x", agent="a", k=0)),
    ("recall empty query", lambda e: e.recall(" ", agent="a")),
    ("recall bad where", lambda e: e.recall("x", agent="a", where={"$bogus": 1})),
    ("recall bad scope", lambda e: e.recall("x", agent="a", scope="galaxy")),
    ("recall distance in cosine", lambda e: e.recall("x", agent="a", rank="distance")),
    ("recall depth in cosine", lambda e: e.recall("x", agent="a", depth=(0, 1))),
    ("list limit -1", lambda e: e.list(agent="a", limit=-1)),
    ("get bad id", lambda e: e.get("not-an-id")),
    ("get missing", lambda e: e.get("0" * 26)),
    ("update importance", lambda e: e.update(e.list(agent="a")[0].id, importance="high")),
    ("delete missing", lambda e: e.delete("0" * 26)),
    ("consolidate bad policy", lambda e: e.consolidate(policy=42)),
    ("consolidate unknown agent", lambda e: e.consolidate(agent="nobody")),
    ("export bad codec", lambda e: e.export_snapshot("/tmp/x.egm", agent="a", vectors="int4")),
    ("import missing file", lambda e: e.import_snapshot("/nonexistent.egm")),
    ("checkpoint bad name", lambda e: e.checkpoint(agent="a", name="no spaces")),
    ("rollback unknown", lambda e: e.rollback(agent="a", name="never")),
    ("refine in cosine", lambda e: e.refine_hierarchy(agent="a")),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[n for n, _ in CALLS])
def test_bad_calls_raise_engram_errors_and_change_nothing(
    engine: Any, call: Callable[[Any], object]
) -> None:
    version = engine.store.version
    with pytest.raises(EngramError):
        call(engine)
    assert engine.store.version == version


def test_a_closed_or_read_only_engine_refuses_replace_records(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with MemoryEngine.open(path, embedder="hashing") as eng:
        memory = eng.add("x", agent="a")
    with MemoryEngine.open(path, embedder="hashing", read_only=True) as reader:
        with pytest.raises(EngramError):
            reader.replace_records([memory.model_copy(update={"importance": 0.9})])
    with pytest.raises(EngramError):
        eng.replace_records([memory.model_copy(update={"importance": 0.9})])
