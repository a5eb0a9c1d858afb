"""Incremental hierarchy updates agree with a full rebuild, whatever the writes."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.index.hierarchy import (
    Hierarchy,
    build_hierarchy,
    extend_hierarchy,
    prune_hierarchy,
)
from engramdb.records import Memory

# An operation: ("add", parent choice, batch size), ("remove", pick, how many),
# ("readd", pick). Choices index into whatever ids exist at that point.
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 10**6), st.integers(1, 3)),
        st.tuples(st.just("remove"), st.integers(0, 10**6), st.integers(1, 2)),
        st.tuples(st.just("readd"), st.integers(0, 10**6), st.just(1)),
    ),
    min_size=1,
    max_size=40,
)


def memory(mid: str, parent: str | None) -> Memory:
    return Memory.model_construct(id=mid, agent="a", parent_id=parent)


def same(incremental: Hierarchy, full: Hierarchy) -> None:
    assert {p: sorted(c) for p, c in incremental.children.items()} == {
        p: sorted(c) for p, c in full.children.items()
    }
    assert dict(incremental.level) == dict(full.level)
    # Bit-identical depths: the engine compares them to find moved points.
    assert dict(incremental.norm) == dict(full.norm)
    assert incremental.unresolved >= full.unresolved


def snapshot(h: Hierarchy) -> tuple:
    return ({p: list(c) for p, c in h.children.items()}, dict(h.level), dict(h.norm))


def only_touched_moved(before: dict[str, float], after: Hierarchy, touched: set[str]) -> None:
    # The engine patches depths of the touched ids only: no other may move.
    moved = {m for m in before if m in after.norm and before[m] != after.norm[m]}
    assert moved <= touched


def follow(
    hierarchy: Hierarchy, update: Callable[[], set[str] | None], rebuild: Callable[[], Hierarchy]
) -> tuple[Hierarchy, set[str] | None]:
    """Apply an in-place update; on refusal it must have changed nothing."""
    before = snapshot(hierarchy)
    touched = update()
    if touched is None:
        assert snapshot(hierarchy) == before
        return rebuild(), None
    only_touched_moved(before[2], hierarchy, touched)
    return hierarchy, touched


@settings(max_examples=150, deadline=None)
@given(ops=OPS, refine=st.booleans())
def test_incremental_updates_equal_a_rebuild(ops: list[tuple[str, int, int]], refine: bool) -> None:
    records: dict[str, Memory] = {}
    gone: dict[str, Memory] = {}
    refined = {"m0": 0.3, "m1": 0.6} if refine else {}
    hierarchy = build_hierarchy(records, refined)
    counter = 0
    for op, pick, size in ops:
        if op == "add":
            new = []
            for _ in range(size):
                mid = f"m{counter}"
                counter += 1
                # A parent among present ids, deleted ones, the memory itself, none,
                # or one not created yet (which can close a cycle later).
                pool = [*records, *gone, mid, None, f"m{counter + 1}"]
                new.append(memory(mid, pool[pick % len(pool)]))
        elif op == "readd":
            if not gone:
                continue
            new = [gone.pop(list(gone)[pick % len(gone)])]
        else:
            if not records:
                continue
            ids = list(records)
            chosen = {ids[(pick + i * 7) % len(ids)] for i in range(size)}
            removed = [records.pop(mid) for mid in chosen]
            gone.update({m.id: m for m in removed})
            hierarchy, _ = follow(
                hierarchy,
                lambda h=hierarchy, r=removed: prune_hierarchy(h, r, refined),
                lambda: build_hierarchy(records, refined),
            )
            same(hierarchy, build_hierarchy(records, refined))
            continue
        for m in new:
            records[m.id] = m
        hierarchy, touched = follow(
            hierarchy,
            lambda h=hierarchy, n=new: extend_hierarchy(h, records, [m.id for m in n], refined),
            lambda: build_hierarchy(records, refined),
        )
        if touched is not None:
            # Only the new memories and their parents may have moved.
            parents = {m.parent_id for m in new if m.parent_id in records}
            assert touched <= {m.id for m in new} | parents
        same(hierarchy, build_hierarchy(records, refined))


def test_shortcuts_report_what_moved() -> None:
    records = {"r": memory("r", None), "a": memory("a", "r")}
    hierarchy = build_hierarchy(records)
    assert hierarchy.norm["a"] > hierarchy.norm["r"]
    leaf_depth = hierarchy.norm["a"]
    records["b"] = memory("b", "a")
    assert extend_hierarchy(hierarchy, records, ["b"]) == {"a", "b"}
    assert hierarchy.norm["a"] < leaf_depth  # a leaf that gains a child moves inwards
    assert hierarchy.level["b"] == 2
    assert prune_hierarchy(hierarchy, [records.pop("b")]) == {"a"}
    assert hierarchy.norm["a"] == leaf_depth
    # Removing a memory with children moves its subtree: the shortcut declines.
    assert prune_hierarchy(hierarchy, [records["r"]]) is None
    # A new memory named as the parent of an existing one re-links it: declines too.
    orphan = {"x": memory("x", "ghost")}
    built = build_hierarchy(orphan)
    assert built.unresolved == {"ghost"}
    orphan["ghost"] = memory("ghost", None)
    assert extend_hierarchy(built, orphan, ["ghost"]) is None
