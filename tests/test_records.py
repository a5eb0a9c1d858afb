"""Section 2 rules: every bad input is refused with ValidationError and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from engramdb import MemoryEngine, ValidationError
from engramdb.records import Memory, check_name, new_id

BAD_NAMES = [
    "",
    "..",
    ".",
    "a/b",
    "a\\b",
    "../x",
    "a\x00b",
    "tab\there",
    "a b",
    "x" * 129,
    "naïve",
    "semi;colon",
    "quote'd",
    'dq"x',
    None,
    7,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused(name: Any) -> None:
    with pytest.raises(ValidationError, match="name"):
        check_name(name, what="agent")


@pytest.mark.parametrize("name", ["a", "agent-1", "user@example.com", "ns:bot_2.v3", "x" * 128])
def test_good_names_pass(name: str) -> None:
    assert check_name(name, what="agent") == name


def test_ids_are_unique_and_time_sortable() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)


def test_memory_is_immutable() -> None:
    m = Memory(agent="a", text="hello")
    with pytest.raises(Exception, match="frozen"):
        m.text = "changed"  # type: ignore[misc]


def _snapshot(engine: MemoryEngine) -> tuple[int, list[Memory]]:
    return engine.table.version, engine.list(agent="keeper", include_archived=True, limit=None)


BAD_ADDS: list[dict[str, Any]] = [
    {"agent": ""},
    {"agent": ".."},
    {"agent": "a/b"},
    {"agent": "bad\\name"},
    {"agent": "ctl\x07"},
    {"session": "../../etc"},
    {"session": ""},
    {"text": ""},
    {"text": "   "},
    {"text": "x" * (64 * 1024 + 1)},
    {"text": 42},
    {"metadata": {"f": object()}},
    {"metadata": {"big": "y" * (16 * 1024)}},
    {"metadata": {"nan": float("nan")}},
    {"metadata": ["not", "a", "dict"]},
    {"kind": "dream"},
    {"importance": 1.5},
    {"importance": -0.1},
    {"importance": "high"},
    {"ttl": -5},
    {"ttl": "soon"},
    {"parent": "not-an-id"},
    {"vector": [1.0, 2.0]},
    {"vector": [float("nan")] * 256},
    {"created_at": "yesterday"},
]


@pytest.mark.parametrize(
    "bad", BAD_ADDS, ids=[next(iter(b)) + str(i) for i, b in enumerate(BAD_ADDS)]
)
def test_bad_add_is_refused_and_store_unchanged(engine: MemoryEngine, bad: dict[str, Any]) -> None:
    engine.add("an existing memory", agent="keeper")
    before = _snapshot(engine)
    kwargs: dict[str, Any] = {"text": "valid text", "agent": "keeper", **bad}
    text = kwargs.pop("text")
    with pytest.raises(ValidationError) as err:
        engine.add(text, **kwargs)
    assert str(err.value)  # names the problem
    assert _snapshot(engine) == before


def test_unknown_parent_is_not_found(engine: MemoryEngine) -> None:
    from engramdb import NotFoundError

    engine.add("an existing memory", agent="keeper")
    before = _snapshot(engine)
    with pytest.raises(NotFoundError, match="01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        engine.add("child", agent="keeper", parent="01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert _snapshot(engine) == before


def test_one_bad_item_rejects_the_whole_batch(engine: MemoryEngine) -> None:
    engine.add("an existing memory", agent="keeper")
    before = _snapshot(engine)
    with pytest.raises(ValidationError, match="item 2"):
        engine.add_many(["fine", "also fine", {"text": ""}], agent="keeper")
    with pytest.raises(ValidationError, match="unknown field"):
        engine.add_many([{"text": "x", "colour": "red"}], agent="keeper")
    assert _snapshot(engine) == before


def test_bad_update_is_refused_and_store_unchanged(engine: MemoryEngine) -> None:
    m = engine.add("an existing memory", agent="keeper", metadata={"a": 1})
    before = _snapshot(engine)
    for kwargs in ({"text": ""}, {"metadata": {"x": {1, 2}}}, {"importance": 2.0}):
        with pytest.raises(ValidationError):
            engine.update(m.id, **kwargs)
    assert _snapshot(engine) == before
    assert engine.get(m.id).metadata == {"a": 1}


def test_ids_dated_alike_keep_their_order_whatever_came_before() -> None:
    from datetime import UTC, datetime

    from engramdb.records import new_id

    later, earlier = datetime(2024, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, tzinfo=UTC)
    first = [new_id(later) for _ in range(20)]
    second = [new_id(earlier) for _ in range(20)]  # dated before the last batch
    third = [new_id(later) for _ in range(20)]  # back to a millisecond seen before
    assert first == sorted(first) and second == sorted(second) and third == sorted(third)
    assert second[-1] < first[0]
