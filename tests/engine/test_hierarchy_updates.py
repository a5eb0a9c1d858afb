"""Incremental hierarchy updates agree with a full rebuild, whatever the writes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.engine.hierarchy import (
    Hierarchy,
    build_hierarchy,
    extend_hierarchy,
    prune_hierarchy,
)
from engramdb.engine.records import Memory

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


def only_touched_moved(before: Hierarchy, after: Hierarchy, touched: set[str]) -> None:
    # The engine patches depths of the touched ids only: no other may move.
    moved = {m for m in before.norm if m in after.norm and before.norm[m] != after.norm[m]}
    assert moved <= touched


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
            step = prune_hierarchy(hierarchy, removed, refined)
            if step is None:
                hierarchy = build_hierarchy(records, refined)
            else:
                only_touched_moved(hierarchy, step[0], step[1])
                hierarchy = step[0]
            same(hierarchy, build_hierarchy(records, refined))
            continue
        for m in new:
            records[m.id] = m
        ext = extend_hierarchy(hierarchy, records, [m.id for m in new], refined)
        if ext is None:
            hierarchy = build_hierarchy(records, refined)
        else:
            only_touched_moved(hierarchy, *ext)
            hierarchy, touched = ext
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
    ext = extend_hierarchy(hierarchy, records, ["b"])
    assert ext is not None
    grown, touched = ext
    assert touched == {"a", "b"}
    assert grown.norm["a"] < leaf_depth  # a leaf that gains a child moves inwards
    assert grown.level["b"] == 2
    pruned = prune_hierarchy(grown, [records.pop("b")])
    assert pruned is not None
    assert pruned[1] == {"a"}
    assert pruned[0].norm["a"] == leaf_depth
    # Removing a memory with children moves its subtree: the shortcut declines.
    assert prune_hierarchy(pruned[0], [records["r"]]) is None
    # A new memory named as the parent of an existing one re-links it: declines too.
    orphan = {"x": memory("x", "ghost")}
    built = build_hierarchy(orphan)
    assert built.unresolved == {"ghost"}
    orphan["ghost"] = memory("ghost", None)
    assert extend_hierarchy(built, orphan, ["ghost"]) is None
