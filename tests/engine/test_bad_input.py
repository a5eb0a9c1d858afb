"""Bad input raises engramdb errors, never a raw Python error, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from engramdb import EngramError, MemoryEngine, ValidationError


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"k": node}
    return node


CASES: list[tuple[str, Callable[[MemoryEngine, str], object]]] = [
    ("surrogate text", lambda e, mid: e.add("bad \ud800 text", agent="a")),
    ("surrogate in add_many", lambda e, mid: e.add_many(["ok", "bad \udfff"], agent="a")),
    ("surrogate query", lambda e, mid: e.recall("what \ud800", agent="a")),
    ("surrogate update", lambda e, mid: e.update(mid, text="new \ud800")),
    ("ttl inf", lambda e, mid: e.add("x", agent="a", ttl=float("inf"))),
    ("ttl 1e20", lambda e, mid: e.add("x", agent="a", ttl=1e20)),
    ("ttl 1e12", lambda e, mid: e.add("x", agent="a", ttl=1e12)),
    ("ttl huge timedelta", lambda e, mid: e.add("x", agent="a", ttl=timedelta(days=999_999))),
    ("deep metadata", lambda e, mid: e.add("x", agent="a", metadata=_nested(5000))),
    ("deep metadata update", lambda e, mid: e.update(mid, metadata=_nested(100))),
    ("deep where", lambda e, mid: e.recall("x", agent="a", where=_nested(5000))),
    ("deep $not", lambda e, mid: e.recall("x", agent="a", where=_not(3000))),
    ("where int key", lambda e, mid: e.recall("x", agent="a", where={1: 2})),
    ("where nested int key", lambda e, mid: e.recall("x", agent="a", where={"$or": [{1: 2}]})),
    ("add_many int", lambda e, mid: e.add_many(5, agent="a")),  # type: ignore[arg-type]
    ("add_many str", lambda e, mid: e.add_many("abc", agent="a")),
    ("add_many dict", lambda e, mid: e.add_many({"text": "x"}, agent="a")),
    ("metadata dotted key", lambda e, mid: e.add("x", agent="a", metadata={"a.b": 1})),
    ("metadata dollar key", lambda e, mid: e.add("x", agent="a", metadata={"$gt": 1})),
    ("nested dotted key", lambda e, mid: e.add("x", agent="a", metadata={"u": [{"x.y": 1}]})),
    ("update dotted key", lambda e, mid: e.update(mid, metadata={"a.b": 1})),
    ("replace_records twice", lambda e, mid: e.replace_records([e.get(mid), e.get(mid)])),
]


def _not(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"topic": "x"}
    for _ in range(depth):
        node = {"$not": node}
    return node


@pytest.mark.parametrize("call", [c for _, c in CASES], ids=[n for n, _ in CASES])
def test_bad_input_raises_engram_error_and_changes_nothing(
    engine: MemoryEngine, call: Callable[[MemoryEngine, str], object]
) -> None:
    mid = engine.add("Alice moved to Lisbon", agent="a", metadata={"tags": ["x", "y"]}).id
    version = engine.store.version
    with pytest.raises(ValidationError):
        call(engine, mid)
    assert engine.store.version == version
    assert [m.text for m in engine.list(agent="a")] == ["Alice moved to Lisbon"]


def test_in_with_a_set_against_list_values(engine: MemoryEngine) -> None:
    engine.add("tagged", agent="a", metadata={"tags": ["x", "y"], "n": 1})
    assert engine.recall("tagged", agent="a", where={"tags": {"$in": {"x", "z"}}}) == []
    assert len(engine.recall("tagged", agent="a", where={"n": {"$in": {1, 2}}})) == 1
    assert len(engine.recall("tagged", agent="a", where={"tags": {"$nin": {"x"}}})) == 1


def test_surrogates_inside_metadata_round_trip(engine: MemoryEngine) -> None:
    m = engine.add("x", agent="a", metadata={"k": "\ud800"})
    assert engine.get(m.id).metadata == {"k": "\ud800"}


@pytest.mark.parametrize("scale", [1e20, 1e-30, 1e300, 5e-324])
def test_extreme_vectors_keep_their_direction(engine: MemoryEngine, scale: float) -> None:
    dim = engine.embedder.dim
    direction = np.zeros(dim)
    direction[:3] = [3.0, 4.0, 0.0]
    if scale == 5e-324:  # a subnormal: only the components that survive matter
        direction[:3] = [1.0, 0.0, 0.0]
    m = engine.add("scaled", agent="a", vector=direction * scale)
    hits = engine.recall(direction * scale, agent="a", k=1)
    assert hits[0].memory.id == m.id
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_numpy_importance_is_accepted(engine: MemoryEngine) -> None:
    m = engine.add("x", agent="a", importance=np.float32(0.25))
    assert m.importance == 0.25
    assert engine.update(m.id, importance=np.float16(1.0)).importance == 1.0
    engine.add("y", agent="a", importance=np.int64(1))
    with pytest.raises(ValidationError):
        engine.add("z", agent="a", importance=np.bool_(True))
    with pytest.raises(EngramError):
        engine.add("z", agent="a", importance=np.float64("nan"))
