"""engine.consolidate() on a real LanceDB store: the stages, provenance, idempotence, crashes."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import MemoryEngine, Settings
from engramdb.consolidation import ConsolidationPolicy, retention
from engramdb.errors import NotFoundError, ReadOnlyError, ValidationError
from engramdb.records import Memory, MemoryKind, MemoryStatus

T0 = datetime(2024, 6, 1, tzinfo=UTC)
DIM = 256  # the hashing embedder's
ONLY_DEDUP = ConsolidationPolicy(cluster={"enabled": False}, forget={"enabled": False})
ONLY_CLUSTER = ConsolidationPolicy(dedup={"enabled": False}, forget={"enabled": False})


def near(centre: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    v = centre + spread * rng.standard_normal(centre.shape) / np.sqrt(len(centre))
    return v / np.linalg.norm(v)


def everything(engine: MemoryEngine, agent: str) -> dict[str, Memory]:
    return {m.id: m for m in engine.list(agent=agent, limit=None, include_archived=True)}


def summary(report: Any) -> list[dict[str, Any]]:
    """The report without timings and byte sizes (a dry run estimates those from records)."""
    skip = {"seconds", "bytes_before", "bytes_after"}
    return [{k: v for k, v in r.to_dict().items() if k not in skip} for r in report.agents]


# -- the stages ----------------------------------------------------------------------------


@pytest.mark.s3
def test_duplicates_merge_into_one_memory_that_covers_them(engine: MemoryEngine) -> None:
    a = engine.add(
        "Caroline adopted a puppy named Max.",
        agent="bot",
        importance=0.3,
        created_at=T0 + timedelta(days=1),
        metadata={"source": "chat", "lang": "en"},
    )
    b = engine.add(
        "caroline adopted a puppy named max",
        agent="bot",
        importance=0.7,
        created_at=T0,
        metadata={"source": "log", "tool": "x"},
    )
    other = engine.add("The weather in Lisbon was sunny", agent="bot")
    engine.recall("puppy Max", agent="bot", k=2)  # one access each
    report = engine.consolidate(agent="bot", policy=ONLY_DEDUP)
    assert report["bot"].groups_merged == 1 and report["bot"].duplicates_archived == 2
    active = engine.list(agent="bot", limit=None)
    assert {m.id for m in active} - {other.id} != set()
    merged = next(m for m in active if m.source_ids)
    assert merged.text == a.text  # the cased original, not the lower-case echo
    assert set(merged.source_ids) == {a.id, b.id}
    assert merged.importance == pytest.approx(0.7)
    assert merged.created_at == b.created_at  # the earliest
    assert merged.access_count == 2
    assert merged.metadata == {
        "source": "chat",
        "lang": "en",
        "tool": "x",
        "consolidated": "merge",
    }
    for src in (a, b):
        got = engine.get(src.id)
        assert got.status is MemoryStatus.ARCHIVED and got.text == src.text
        assert got.parent_id == merged.id
    hits = engine.recall("puppy named Max", agent="bot", k=5)
    assert {h.memory.id for h in hits} == {merged.id, other.id}
    assert next(h for h in hits if h.memory.id == merged.id).covers == merged.source_ids
    with_archived = engine.recall("puppy named Max", agent="bot", k=5, include_archived=True)
    assert {a.id, b.id} <= {h.memory.id for h in with_archived}


def _topics(engine: MemoryEngine, agent: str, *, per_topic: int = 5) -> dict[str, list[Memory]]:
    """Two topics of old episodes (cosine about 0.8 to their centre) and one recent memory."""
    rng = np.random.default_rng(7)
    items = []
    for t, topic in enumerate(("cats", "boats")):
        centre = rng.standard_normal(DIM)
        centre /= np.linalg.norm(centre)
        items += [
            {
                "text": f"{topic} note {i}",
                "created_at": T0 + timedelta(days=t, hours=i),
                "vector": near(centre, rng, 0.6),
            }
            for i in range(per_topic)
        ]
    items.append({"text": "today", "created_at": T0 + timedelta(days=60)})
    added = engine.add_many(items, agent=agent)
    return {"cats": added[:per_topic], "boats": added[per_topic : 2 * per_topic]}


@pytest.mark.s3
def test_old_episodes_cluster_under_gists_that_parent_them(engine: MemoryEngine) -> None:
    topics = _topics(engine, "bot")
    report = engine.consolidate(agent="bot", policy=ONLY_CLUSTER)
    assert report["bot"].gists == 2 and report["bot"].clustered == 10
    stored = everything(engine, "bot")
    gists = [m for m in stored.values() if m.metadata.get("consolidated") == "gist"]
    for topic, members in topics.items():
        gist = next(g for g in gists if set(g.source_ids) == {m.id for m in members})
        assert gist.kind is MemoryKind.SEMANTIC and gist.status is MemoryStatus.ACTIVE
        assert gist.text.splitlines()[0].startswith(topic)
        assert gist.created_at == max(m.created_at for m in members)
        for m in members:
            assert stored[m.id].parent_id == gist.id
            assert stored[m.id].status is MemoryStatus.ARCHIVED
    today = next(m for m in stored.values() if m.text == "today")
    assert today.parent_id is None and today.status is MemoryStatus.ACTIVE  # inside the window
    assert {m.text for m in engine.list(agent="bot", limit=None)} == {"today"} | {
        g.text for g in gists
    }


def test_gists_can_leave_their_members_active(engine: MemoryEngine) -> None:
    topics = _topics(engine, "bot")
    policy = ConsolidationPolicy(
        dedup={"enabled": False}, forget={"enabled": False}, cluster={"archive_members": False}
    )
    engine.consolidate(agent="bot", policy=policy)
    stored = everything(engine, "bot")
    for members in topics.values():
        for m in members:
            assert stored[m.id].status is MemoryStatus.ACTIVE
            assert stored[stored[m.id].parent_id].metadata["consolidated"] == "gist"
    assert not engine.consolidate(agent="bot", policy=policy).changed


def test_a_summarizer_writes_the_gists(engine: MemoryEngine) -> None:
    _topics(engine, "bot")
    seen: list[list[str]] = []

    def summarize(texts: list[str]) -> str:
        seen.append(texts)
        return f"About {texts[0].split()[0]}: {len(texts)} notes"

    engine.consolidate(agent="bot", policy=ONLY_CLUSTER.model_copy(update={"summarize": summarize}))
    assert sorted(len(t) for t in seen) == [5, 5]
    assert all(t == sorted(t, key=lambda x: int(x.split()[-1])) for t in seen)  # oldest first
    gists = [m for m in engine.list(agent="bot", limit=None) if m.source_ids]
    assert sorted(g.text for g in gists) == ["About boats: 5 notes", "About cats: 5 notes"]
    hit = engine.recall("About cats: 5 notes", agent="bot", k=1)[0]  # embedded from its text
    assert hit.similarity == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("bad", ["", "   ", 42, "x" * 70_000])
def test_a_bad_summary_fails_the_agent_before_any_write(engine: MemoryEngine, bad: object) -> None:
    _topics(engine, "bot")
    version = engine.table.version
    policy = ONLY_CLUSTER.model_copy(update={"summarize": lambda texts: bad})
    with pytest.raises(ValidationError, match="summarize"):
        engine.consolidate(agent="bot", policy=policy)
    assert engine.table.version == version


def test_expiry_deletes_expired_and_evicted_working_memory(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        engine.add("keep me", agent="bot")
        # Long enough that the next adds (which load the agent, purging what has
        # expired) come before it expires, even on a loaded machine.
        engine.add("gone soon", agent="bot", ttl=0.5)
        for i in range(4):
            engine.add(f"scratch {i}", agent="bot", kind="working", session="s1")
    time.sleep(0.6)
    with MemoryEngine.open(
        store_path, embedder="hashing", settings=Settings(working_capacity=2)
    ) as engine:
        report = engine.consolidate(agent="bot")
        assert report["bot"].expired == 3
        texts = {m.text for m in engine.list(agent="bot", limit=None, include_archived=True)}
        assert texts == {"keep me", "scratch 2", "scratch 3"}


def test_an_agent_whose_memories_all_expired_is_gone(engine: MemoryEngine) -> None:
    engine.add("brief", agent="gone", ttl=0.01)
    engine.add("stays", agent="kept")
    time.sleep(0.05)
    report = engine.consolidate(progress=True)
    assert report["gone"].after == {} and report["gone"].expired == 1
    assert engine.agents() == ["kept"]
    assert not engine.consolidate().changed


@pytest.mark.s3
def test_forgetting_archives_then_deletes_but_never_pinned(engine: MemoryEngine) -> None:
    now = T0  # in the past: created_at may not lie ahead of the wall clock
    years = lambda y: now - timedelta(days=365 * y)  # noqa: E731
    items = [
        {"text": "fresh", "created_at": now},
        {"text": "three years old", "created_at": years(3)},
        {"text": "five years old", "created_at": years(5)},
        {"text": "pinned by importance", "created_at": years(5), "importance": 1.0},
        {"text": "pinned by metadata", "created_at": years(5), "metadata": {"pinned": True}},
        {"text": "old fact restated", "created_at": years(6)},
        {"text": "Old fact restated!", "created_at": now - timedelta(days=1)},
    ]
    added = {m.text: m for m in engine.add_many(items, agent="bot")}
    policy = ConsolidationPolicy(cluster={"enabled": False})
    report = engine.consolidate(agent="bot", policy=policy)["bot"]
    stored = everything(engine, "bot")
    assert stored[added["three years old"].id].status is MemoryStatus.ARCHIVED
    assert added["five years old"].id not in stored
    for text in ("fresh", "pinned by importance", "pinned by metadata"):
        assert stored[added[text].id].status is MemoryStatus.ACTIVE
    # A restatement yesterday is a rehearsal: the merge lives as long as its newest member.
    merged = next(m for m in stored.values() if m.metadata.get("consolidated") == "merge")
    assert merged.status is MemoryStatus.ACTIVE and merged.text == "Old fact restated!"
    assert (report.forgotten, report.deleted) == (1, 1)
    assert not engine.consolidate(agent="bot", policy=policy).changed


def test_a_deleted_consolidated_memory_takes_its_archived_sources(engine: MemoryEngine) -> None:
    old = T0 - timedelta(days=4000)
    engine.add_many(
        [
            {"text": "ancient thing", "created_at": old},
            {"text": "Ancient thing.", "created_at": old + timedelta(days=1)},
            {"text": "now", "created_at": T0},
        ],
        agent="bot",
    )
    engine.consolidate(agent="bot", policy=ONLY_DEDUP)
    assert len(everything(engine, "bot")) == 4
    report = engine.consolidate(agent="bot", policy=ConsolidationPolicy())["bot"]
    assert report.deleted == 3
    assert [m.text for m in everything(engine, "bot").values()] == ["now"]


def test_wall_clock_ages_against_now(engine: MemoryEngine) -> None:
    engine.add("a memory from long ago", agent="bot", created_at=T0 - timedelta(days=3 * 365))
    agent_clock = ConsolidationPolicy(cluster={"enabled": False})
    assert not engine.consolidate(agent="bot", policy=agent_clock).changed  # its own newest
    wall = agent_clock.model_copy(update={"clock": "wall"})
    assert engine.consolidate(agent="bot", policy=wall)["bot"].deleted == 1


# -- the pass ------------------------------------------------------------------------------


def test_every_agent_by_default_and_a_missing_agent_is_an_error(engine: MemoryEngine) -> None:
    engine.add_many(["x", "X!"], agent="one")
    engine.add_many(["y", "y."], agent="two")
    report = engine.consolidate()
    assert [r.agent for r in report.agents] == ["one", "two"]
    assert report.active_before == 4 and report.active_after == 2
    with pytest.raises(NotFoundError):
        engine.consolidate(agent="nobody")
    with pytest.raises(NotFoundError):
        report["nobody"]
    with pytest.raises(ValidationError):
        engine.consolidate(policy="aggressive")


@pytest.mark.s3
def test_read_only_engines_cannot_consolidate(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as engine:
        engine.add("x", agent="bot")
    with MemoryEngine.open(store_path, embedder="hashing", read_only=True) as engine:
        with pytest.raises(ReadOnlyError):
            engine.consolidate()


def test_the_report_counts_kinds_statuses_and_bytes(engine: MemoryEngine) -> None:
    engine.add_many(["note a", "Note A.", "note b"], agent="bot", kind="semantic")
    events: list[str] = []
    from engramdb.consolidation.run import run_consolidation

    report = run_consolidation(
        engine, agent="bot", progress=lambda e: events.append(f"{e.agent}:{e.step}")
    )["bot"]
    assert report.before == {"semantic": {"active": 3}}
    assert report.after == {"semantic": {"active": 2, "archived": 2}}
    assert report.bytes_after > report.bytes_before > 0  # archived rows stay in the store
    assert report.seconds > 0 and report.changed
    assert events == [f"bot:{s}" for s in ("load", "expire", "dedup", "cluster", "forget", "write")]


# -- properties ----------------------------------------------------------------------------

WORDS = ["cat", "boat", "rain", "tea", "moon", "jazz"]
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
variants = st.sampled_from([str, str.upper, lambda s: s.capitalize() + "!", lambda s: s + "."])
memory = st.fixed_dictionaries(
    {
        "text": st.tuples(texts, variants).map(lambda tv: tv[1](tv[0])),
        "kind": st.sampled_from(["episodic", "episodic", "semantic", "procedural"]),
        "days": st.integers(0, 2500),
        "importance": st.sampled_from([0.0, 0.5, 0.9, 1.0]),
        "pinned": st.booleans(),
    }
)
policies = st.sampled_from(
    [
        ConsolidationPolicy(),
        ConsolidationPolicy(cluster={"archive_members": False, "threshold": 0.5}),
        ConsolidationPolicy(forget={"enabled": False}, cluster={"min_size": 2}),
        ConsolidationPolicy(dedup={"cross_kind": True, "threshold": 0.8}),
        ConsolidationPolicy(clock="wall", cluster={"window_days": 0}),
    ]
)
_agents = itertools.count()


def _add(engine: MemoryEngine, agent: str, spec: list[dict[str, Any]]) -> dict[str, Memory]:
    now = T0  # in the past: created_at may not lie ahead of the wall clock
    items = [
        {
            "text": m["text"],
            "kind": m["kind"],
            "created_at": now - timedelta(days=m["days"]),
            "importance": m["importance"],
            "metadata": {"pinned": True} if m["pinned"] else {},
        }
        for m in spec
    ]
    return {m.id: m for m in engine.add_many(items, agent=agent)}


@pytest.mark.slow
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(memory, min_size=1, max_size=25), policies)
def test_no_memory_is_lost_and_a_second_pass_changes_nothing(
    engine: MemoryEngine, spec: list[dict[str, Any]], policy: ConsolidationPolicy
) -> None:
    agent = f"prop{next(_agents)}"
    originals = _add(engine, agent, spec)
    version = engine.table.version
    dry = engine.consolidate(agent=agent, policy=policy, dry_run=True)
    assert engine.table.version == version  # a dry run writes nothing
    assert set(everything(engine, agent)) == set(originals)
    first = engine.consolidate(agent=agent, policy=policy)
    assert summary(dry) == summary(first)  # and says exactly what a real run does
    assert dry.agents[0].bytes_after == pytest.approx(first.agents[0].bytes_after, rel=0.05)

    stored = everything(engine, agent)
    named = {s for m in stored.values() for s in m.source_ids}
    ref = (
        max(m.created_at for m in originals.values())
        if policy.clock == "agent"
        else datetime.now(UTC)
    )
    for mid, m in originals.items():
        age = (ref - m.created_at).total_seconds() / 86400
        r = retention([age], [m.importance], [0], base_days=policy.forget.half_life_days)[0]
        now = stored.get(mid)
        if now is None:  # deleted: only by forgetting, and only what decayed that far
            assert policy.forget.enabled and not m.pinned
            assert r < policy.forget.delete_below
        elif now.status is MemoryStatus.ARCHIVED and mid not in named:  # forgotten
            assert policy.forget.enabled and not m.pinned
            assert r < policy.forget.archive_below
        else:
            assert now.status is MemoryStatus.ACTIVE or mid in named
        assert (now.text if now else m.text) == m.text
    for m in stored.values():  # provenance and parents point at stored memories
        assert set(m.source_ids) <= set(stored)
        assert m.parent_id is None or m.parent_id in stored

    if not stored:  # forgetting took every memory (old, unpinned): the agent is gone
        assert agent not in engine.agents()
        return
    version = engine.table.version
    second = engine.consolidate(agent=agent, policy=policy)
    assert not second.changed
    assert engine.table.version == version
    assert everything(engine, agent) == stored


# -- crashes -------------------------------------------------------------------------------

CONSOLIDATOR = """
import sys
from engramdb import MemoryEngine
from engramdb.consolidation.run import run_consolidation
eng = MemoryEngine.open(sys.argv[1], embedder="hashing")
def report(event):
    if event.step == "write":
        print(event.agent, flush=True)
run_consolidation(eng, progress=report)
print("finished", flush=True)
"""


def _canonical(engine: MemoryEngine, agent: str) -> Counter[tuple[Any, ...]]:
    """An agent's memory up to the ids a pass makes up."""
    stored = everything(engine, agent)
    return Counter(
        (
            m.text,
            m.kind.value,
            m.status.value,
            tuple(sorted(stored[s].text for s in m.source_ids if s in stored)),
            stored[m.parent_id].text if m.parent_id in stored else None,
        )
        for m in stored.values()
    )


def _populate(root: Path, agents: int, per_agent: int) -> None:
    rng = np.random.default_rng(0)
    with MemoryEngine.open(root, embedder="hashing") as engine:
        for a in range(agents):
            items = []
            for i in range(per_agent):
                words = " ".join(rng.choice(WORDS, size=3))
                text = words.upper() if i % 3 == 0 else words
                items.append({"text": f"{text} {i % 40}", "created_at": T0 + timedelta(hours=i)})
            engine.add_many(items, agent=f"agent{a}")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
def test_a_killed_pass_leaves_each_agent_before_or_after(tmp_path: Path, delay: float) -> None:
    root, expected_root = tmp_path / "store", tmp_path / "expected"
    _populate(root, agents=6, per_agent=400)
    shutil.copytree(root, expected_root)
    with MemoryEngine.open(root, embedder="hashing") as engine:
        names = engine.agents()
        before = {a: _canonical(engine, a) for a in names}
    with MemoryEngine.open(expected_root, embedder="hashing") as engine:
        engine.consolidate()
        after = {a: _canonical(engine, a) for a in names}
    assert all(before[a] != after[a] for a in names)

    proc = subprocess.Popen(
        [sys.executable, "-c", CONSOLIDATOR, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # one agent written: the pass is under way
    assert first.strip() == "agent0"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with MemoryEngine.open(root, embedder="hashing") as engine:  # opens: the lock died with it
        states = {a: _canonical(engine, a) for a in names}
        assert states["agent0"] == after["agent0"]
        for a in names:
            assert states[a] in (before[a], after[a]), f"{a} is half-consolidated"
        engine.consolidate()  # the next pass finishes the job
        assert {a: _canonical(engine, a) for a in names} == after
