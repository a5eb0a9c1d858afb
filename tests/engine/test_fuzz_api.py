"""Fuzz the public API with junk: anything raised is an EngramError, and the store keeps
every acknowledged write through a reopen."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import EngramError, MemoryEngine

DIM = 256

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.sampled_from(
        [float("inf"), -0.0, 1e20, 1e-30, 1e12, np.float32(0.5), np.int64(3), np.nan, object()]
    ),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 1, 1)),
    st.datetimes(timezones=st.just(UTC)),
    st.timedeltas(),
    st.sets(st.integers(0, 3), max_size=3),
    st.text(alphabet=st.sampled_from(["a", ".", "$", "\ud800", " ", "\n", "'"]), max_size=6),
)
_junk = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 3)), inner, max_size=3)
    ),
    max_leaves=8,
)
_names = st.sampled_from(["a", "b"]) | _junk
_texts = st.sampled_from(["Alice moved to Lisbon", "cats purr", "x"]) | _junk
_vectors = st.one_of(
    st.none(),
    _junk,
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=DIM, max_size=DIM),
    st.floats(-1e30, 1e30).map(lambda s: np.full(DIM, s)),
)


def _call(fn: Any, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """Run one API call; an error must be an EngramError (anything else fails the test)."""
    try:
        return True, fn(*args, **kwargs)
    except EngramError:
        return False, None


def _kept(memory: Any) -> bool:
    """Whether an acknowledged memory must still be there after a reopen."""
    return memory.expires_at is None and memory.kind.value != "working"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_junk_through_the_public_api(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        acknowledged: dict[str, str] = {}
        engine = MemoryEngine.open(root, embedder="hashing")
        try:
            for _ in range(data.draw(st.integers(1, 8), label="ops")):
                op = data.draw(st.sampled_from(
                    ["add", "add_many", "update", "recall", "list", "get", "delete"]
                ), label="op")  # fmt: skip
                known = sorted(acknowledged) or ["01ARZ3NDEKTSV4RRFFQ69G5FAV"]
                some_id = data.draw(st.sampled_from(known) | _junk, label="id")
                if op == "add":
                    kwargs = data.draw(st.fixed_dictionaries({}, optional={
                        "kind": st.sampled_from(["episodic", "semantic"]) | _junk,
                        "session": _names, "metadata": _junk, "importance": _junk,
                        "created_at": _junk, "ttl": _junk, "parent": _junk, "vector": _vectors,
                    }), label="kwargs")  # fmt: skip
                    ok, m = _call(engine.add, data.draw(_texts), agent=data.draw(_names), **kwargs)
                    if ok and _kept(m):
                        acknowledged[m.id] = m.text
                elif op == "add_many":
                    items = data.draw(_junk | st.lists(_texts | _junk, max_size=3), label="items")
                    ok, ms = _call(engine.add_many, items, agent=data.draw(_names))
                    for m in ms or []:
                        if _kept(m):
                            acknowledged[m.id] = m.text
                elif op == "update":
                    kwargs = data.draw(st.fixed_dictionaries({}, optional={
                        "text": _texts, "metadata": _junk, "importance": _junk, "agent": _names,
                    }), label="kwargs")  # fmt: skip
                    ok, m = _call(engine.update, some_id, **kwargs)
                    if ok and m.id in acknowledged:
                        acknowledged[m.id] = m.text
                elif op == "recall":
                    kwargs = data.draw(st.fixed_dictionaries({}, optional={
                        "k": _junk | st.integers(1, 5), "where": _junk, "since": _junk,
                        "until": _junk, "kinds": _junk, "session": _names, "now": _junk,
                    }), label="kwargs")  # fmt: skip
                    query = data.draw(_texts | _vectors, label="query")
                    ok, hits = _call(engine.recall, query, agent=data.draw(_names), **kwargs)
                    for hit in hits or []:
                        assert math.isfinite(hit.score)
                elif op == "list":
                    _call(engine.list, agent=data.draw(_names), kind=data.draw(_junk),
                          limit=data.draw(_junk), offset=data.draw(_junk | st.just(0)))  # fmt: skip
                elif op == "get":
                    _call(engine.get, some_id)
                else:
                    ok, _ = _call(engine.delete, some_id)
                    if ok:
                        acknowledged.pop(some_id, None)
        finally:
            engine.close()
        with MemoryEngine.open(root, embedder="hashing", read_only=True) as reader:
            for mid, text in acknowledged.items():
                assert reader.get(mid).text == text
