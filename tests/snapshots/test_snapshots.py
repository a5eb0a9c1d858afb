"""Snapshots: exact round trips, copies, modes, encodings, encryption, and every way a
file can be wrong, each refused before the store is touched."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import Memory, MemoryEngine, MemoryStatus
from engramdb.errors import (
    EmbedderMismatchError,
    NotFoundError,
    ReadOnlyError,
    SnapshotError,
    SnapshotIntegrityError,
    SnapshotKeyError,
    ValidationError,
)
from engramdb.snapshots.format import FORMAT_VERSION, MAGIC, Part, write_snapshot
from engramdb.snapshots.io import copy_id, read_snapshot_manifest, verify_snapshot

NOW = datetime(2031, 1, 1, tzinfo=UTC)
WORDS = (
    "alice bob lisbon paris coffee tea window seat flight hotel meeting monday friday "
    "dog cat garden book music piano rain"
).split()
KEY = bytes(range(32))


# -- helpers ---------------------------------------------------------------------------------


def fill(engine: MemoryEngine, agent: str = "bot", n: int = 12) -> list[Memory]:
    """An agent with every field in use: kinds, sessions, metadata, parents, provenance,
    archived memories, access counts."""
    rng = random.Random(n)
    items = [
        {
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))) + f" #{i}",
            "kind": ["episodic", "semantic", "procedural", "working"][i % 4],
            "session": [None, "s1", "chat:7"][i % 3],
            "metadata": {"i": i, "tags": ["x", str(i % 2)], "score": i / 7} if i % 2 else {},
            "importance": round(rng.random(), 4),
            "created_at": datetime(2024, 1 + i % 12, 1 + i, tzinfo=UTC),
        }
        for i in range(n)
    ]
    made = engine.add_many(items, agent=agent)
    linked = [
        m.model_copy(
            update={
                "parent_id": made[0].id if i > 1 else None,
                "source_ids": (made[i - 1].id, made[i - 2].id) if i % 3 == 2 else (),
                "status": MemoryStatus.ARCHIVED if i % 5 == 4 else MemoryStatus.ACTIVE,
            }
        )
        for i, m in enumerate(made)
    ]
    engine.replace_records(linked)
    engine.invalidate(agent)
    engine.recall(made[3].text, agent=agent, k=3)  # access counts, flushed by export
    return linked


def dump(engine: MemoryEngine, agent: str) -> list[dict[str, Any]]:
    return [m.model_dump() for m in engine.list(agent=agent, limit=None, include_archived=True)]


def recall_ids(engine: MemoryEngine, agent: str, queries: list[str], k: int = 20) -> list[list]:
    return [
        [
            (round(h.score, 6), h.memory.id)
            for h in engine.recall(
                q, agent=agent, k=k, now=NOW, record_access=False, include_archived=True
            )
        ]
        for q in queries
    ]


def state(engine: MemoryEngine) -> tuple[int, int]:
    """Changes with every commit: the table version, and the row count."""
    return engine.table.version, engine.table.count()


def as_copy(memories: list[dict[str, Any]], agent: str) -> list[dict[str, Any]]:
    """What a copy of these memories under ``agent`` must hold."""
    out = []
    for m in memories:
        m = dict(m)
        m["id"] = copy_id(m["id"], agent)
        m["agent"] = agent
        m["parent_id"] = m["parent_id"] and copy_id(m["parent_id"], agent)
        m["source_ids"] = tuple(copy_id(s, agent) for s in m["source_ids"])
        out.append(m)
    return sorted(out, key=lambda m: (m["created_at"], m["id"]))


def parse(path: Path) -> tuple[int, bytes, list[bytes]]:
    """Split a snapshot by its documented layout: version, envelope, segments."""
    data = path.read_bytes()
    magic, version, env_len = struct.unpack(">8sHI", data[:14])
    assert magic == MAGIC
    envelope = data[14 : 14 + env_len]
    segments, at = [], 14 + env_len
    for seg in json.loads(envelope)["segments"]:
        segments.append(data[at : at + seg["bytes"]])
        at += seg["bytes"]
    assert at + 32 == len(data)
    return version, envelope, segments


def assemble(path: Path, segments: list[bytes], envelope: dict[str, Any], version: int = 1) -> None:
    """Write a snapshot with correct hashes around the given segments (a careful forger)."""
    envelope = {
        **envelope,
        "segments": [{"bytes": len(s), "sha256": hashlib.sha256(s).hexdigest()} for s in segments],
    }
    env = json.dumps(envelope).encode()
    head = struct.pack(">8sHI", MAGIC, version, len(env)) + env
    path.write_bytes(head + b"".join(segments) + hashlib.sha256(head).digest())


def refused(engine: MemoryEngine, path: Path, error: type[Exception], **kw: Any) -> str:
    before = state(engine)
    with pytest.raises(error) as info:
        engine.import_snapshot(path, **kw)
    assert state(engine) == before
    return str(info.value)


@pytest.fixture
def small(engine: MemoryEngine, tmp_path: Path) -> Path:
    """A 3-memory snapshot, small enough to damage at every byte."""
    engine.add_many(["alice likes tea", "bob flies monday", "rain in lisbon"], agent="tiny")
    path = tmp_path / "tiny.egm"
    engine.export_snapshot(path, agent="tiny")
    return path


@pytest.fixture
def other(tmp_path: Path) -> Any:
    eng = MemoryEngine.open(tmp_path / "other", embedder="hashing")
    yield eng
    eng.close()


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.s3
def test_float32_round_trip_is_exact(engine: MemoryEngine, other: MemoryEngine, tmp_path):
    fill(engine)
    path = tmp_path / "bot.egm"
    info = engine.export_snapshot(path, agent="bot")
    assert info.memories == 12 and info.bytes == path.stat().st_size
    report = other.import_snapshot(path)
    assert (report.agent, report.added, report.copied) == ("bot", 12, False)
    assert dump(other, "bot") == dump(engine, "bot")
    queries = ["alice tea", "flight monday", "garden rain piano"]
    assert recall_ids(other, "bot", queries) == recall_ids(engine, "bot", queries)
    assert other.agents() == ["bot"]


def test_export_flushes_access_counts(engine: MemoryEngine, other: MemoryEngine, tmp_path):
    made = engine.add_many(["alice likes tea", "bob likes coffee"], agent="bot")
    engine.recall("alice tea", agent="bot", k=1)  # buffered, not yet written
    engine.export_snapshot(tmp_path / "s.egm", agent="bot")
    other.import_snapshot(tmp_path / "s.egm")
    assert other.get(made[0].id).access_count == 1


def test_copy_under_another_name_rewrites_ids_and_links(engine: MemoryEngine, tmp_path):
    fill(engine)
    path = tmp_path / "bot.egm"
    engine.export_snapshot(path, agent="bot")
    report = engine.import_snapshot(path, agent="bot-copy")
    assert report.copied and report.added == 12 and report.source_agent == "bot"
    copy = dump(engine, "bot-copy")
    assert copy == as_copy(dump(engine, "bot"), "bot-copy")
    ids = {m["id"] for m in copy}
    assert not ids & {m["id"] for m in dump(engine, "bot")}
    linked = [m for m in copy if m["parent_id"] or m["source_ids"]]
    assert linked and all({m["parent_id"], *m["source_ids"]} - {None} <= ids for m in linked)
    # the same copy again, merged: ids are derived, so nothing changes
    before = state(engine)
    again = engine.import_snapshot(path, agent="bot-copy", mode="merge")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 12)
    assert state(engine) == before


@pytest.mark.s3
def test_modes(engine: MemoryEngine, other: MemoryEngine, tmp_path):
    made = engine.add_many([f"memory {w}" for w in WORDS[:6]], agent="bot")
    path = tmp_path / "bot.egm"
    engine.export_snapshot(path, agent="bot")
    other.import_snapshot(path)
    msg = refused(other, path, ValidationError)
    assert "already has 6 memories" in msg and "mode='replace'" in msg
    # merge: the store's newer edit stays; the snapshot's newer edit wins; new ones arrive
    other.update(made[0].id, metadata={"edited": "in store"})
    engine.update(made[1].id, metadata={"edited": "in source"})
    extra = engine.add("a new one", agent="bot")
    engine.export_snapshot(path, agent="bot")
    report = other.import_snapshot(path, mode="merge")
    assert (report.added, report.updated, report.unchanged) == (1, 1, 5)
    assert other.get(made[0].id).metadata == {"edited": "in store"}
    assert other.get(made[1].id).metadata == {"edited": "in source"}
    assert other.get(extra.id).text == "a new one"
    # replace: exactly the snapshot's memories, the extra store-only one removed
    stray = other.add("only in the other store", agent="bot")
    other.add("another agent", agent="zed")
    report = other.import_snapshot(path, mode="replace")
    assert (report.added, report.updated, report.removed) == (0, 7, 1)
    assert dump(other, "bot") == dump(engine, "bot")
    with pytest.raises(NotFoundError):
        other.get(stray.id)
    assert other.count(agent="zed") == 1


def test_ids_owned_by_another_agent_are_refused(engine: MemoryEngine, tmp_path):
    engine.add_many(["alice likes tea", "bob likes coffee"], agent="bot")
    path = tmp_path / "bot.egm"
    engine.export_snapshot(path, agent="bot")
    # the same ids, claimed for another agent by a rehashed manifest
    _, envelope, segments = parse(path)
    body = segments[0].replace(b'"agent":"bot"', b'"agent":"zed"')
    assemble(path, [body, *segments[1:]], json.loads(envelope))
    assert read_snapshot_manifest(path).agent == "zed"
    msg = refused(engine, path, ValidationError)
    assert "belong to another agent" in msg and "agent=" in msg


@pytest.mark.parametrize("encoding", ["float16", "int8"])
def test_smaller_encodings_keep_recall(engine: MemoryEngine, other, tmp_path, encoding):
    import numpy as np

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((400, 256)).astype(np.float32)  # dense, like real embeddings
    items = [{"text": f"memory {i}", "vector": v} for i, v in enumerate(vectors[:300])]
    engine.add_many(items, agent="bot")
    path = tmp_path / f"{encoding}.egm"
    info = engine.export_snapshot(path, agent="bot", vectors=encoding)
    assert info.manifest.vectors.encoding == encoding
    other.import_snapshot(path)
    agree = [
        len({h.memory.id for h in engine.recall(q, agent="bot", k=10, record_access=False)}
            & {h.memory.id for h in other.recall(q, agent="bot", k=10, record_access=False)})
        / 10
        for q in vectors[300:]
    ]  # fmt: skip
    assert sum(agree) / len(agree) >= 0.97
    restored = {m.id: m for m in other.list(agent="bot", limit=None)}
    for m in engine.list(agent="bot", limit=None):
        assert restored[m.id] == m  # records stay exact; only vectors are approximate


def test_include_archived_and_expired(engine: MemoryEngine, other: MemoryEngine, tmp_path):
    made = fill(engine)
    engine.add("gone soon", agent="bot", ttl=0.05)
    time.sleep(0.1)
    info = engine.export_snapshot(tmp_path / "a.egm", agent="bot", include_archived=False)
    archived = sum(m.status is MemoryStatus.ARCHIVED for m in made)
    assert archived and info.memories == 12 - archived
    assert info.manifest.counts.statuses == {"active": 12 - archived}
    other.import_snapshot(tmp_path / "a.egm")
    assert all(m.status is MemoryStatus.ACTIVE for m in other.list(agent="bot", limit=None))


@pytest.mark.s3
def test_read_only_engine_exports_but_does_not_import(engine, store_path, tmp_path):
    engine.add("alice likes tea", agent="bot")
    engine.close()
    with MemoryEngine.open(store_path, embedder="hashing", read_only=True) as ro:
        ro.export_snapshot(tmp_path / "s.egm", agent="bot")
        with pytest.raises(ReadOnlyError):
            ro.import_snapshot(tmp_path / "s.egm", agent="copy")


def test_export_errors(engine: MemoryEngine, tmp_path):
    engine.add("alice likes tea", agent="bot")
    with pytest.raises(NotFoundError, match="no memories"):
        engine.export_snapshot(tmp_path / "s.egm", agent="nobody")
    with pytest.raises(ValidationError, match="float32, float16, int8"):
        engine.export_snapshot(tmp_path / "s.egm", agent="bot", vectors="int4")
    with pytest.raises(ValidationError, match="32 random bytes"):
        engine.export_snapshot(tmp_path / "s.egm", agent="bot", key=b"short")
    with pytest.raises(ValidationError, match="agent name"):
        engine.export_snapshot(tmp_path / "s.egm", agent="../etc")
    with pytest.raises(ValidationError, match="import mode"):
        engine.import_snapshot(tmp_path / "s.egm", mode="overwrite")
    assert not (tmp_path / "s.egm").exists()


# -- the property: random agents round-trip exactly ------------------------------------------

_keys = st.text(max_size=6).filter(lambda k: "." not in k and not k.startswith("$"))
"""Metadata keys a where filter can name (others are refused at write)."""
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=6)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
_texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join) | st.text(
    min_size=1, max_size=20
).filter(str.strip)
_items = st.lists(
    st.fixed_dictionaries(
        {
            "text": _texts,
            "kind": st.sampled_from(["episodic", "semantic", "procedural", "working"]),
            "session": st.none() | st.sampled_from(["s1", "chat:9", "a@b.c"]),
            "metadata": st.dictionaries(_keys, _json, max_size=3),
            "importance": st.floats(0, 1),
            "created_at": st.datetimes(
                datetime(2001, 1, 1), datetime(2025, 1, 1), timezones=st.just(UTC)
            ),
        }
    ),
    min_size=1,
    max_size=10,
)  # fmt: skip


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(items=_items, links=st.data())
def test_round_trip_property(items: list[dict[str, Any]], links: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with MemoryEngine.open(root / "a", embedder="hashing") as a:
            made = a.add_many(items, agent="agent-1")
            ids = [m.id for m in made]
            linked = []
            for i, m in enumerate(made):
                parent = links.draw(st.none() | st.sampled_from(ids[: i + 1]))
                sources = links.draw(st.lists(st.sampled_from(ids), max_size=3, unique=True))
                status = links.draw(st.sampled_from(list(MemoryStatus)))
                update = {"parent_id": parent, "source_ids": tuple(sources), "status": status}
                linked.append(m.model_copy(update=update))
            a.replace_records(linked)
            a.invalidate("agent-1")
            a.recall(items[0]["text"], agent="agent-1", k=2)  # access counts
            path = root / "s.egm"
            a.export_snapshot(path, agent="agent-1")
            queries = [it["text"] for it in items[:3]] + ["alice coffee"]
            with MemoryEngine.open(root / "b", embedder="hashing") as b:
                b.import_snapshot(path)
                assert dump(b, "agent-1") == dump(a, "agent-1")
                assert recall_ids(b, "agent-1", queries) == recall_ids(a, "agent-1", queries)
            a.import_snapshot(path, agent="agent-2")
            assert dump(a, "agent-2") == as_copy(dump(a, "agent-1"), "agent-2")
            # same scores in the same order; within a tie the order follows the new ids
            for mine, theirs in zip(
                recall_ids(a, "agent-1", queries), recall_ids(a, "agent-2", queries), strict=True
            ):
                mapped = sorted((s, copy_id(i, "agent-2")) for s, i in mine)
                assert [s for s, _ in theirs] == [s for s, _ in mine]
                assert sorted(theirs) == mapped


# -- encryption ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", [KEY, pytest.param("correct horse battery staple", marks=pytest.mark.slow)]
)
def test_encrypted_round_trip_and_nothing_leaks(engine, other, tmp_path, key):
    fill(engine, agent="secret-agent")
    path = tmp_path / "sealed.egm"
    info = engine.export_snapshot(path, agent="secret-agent", key=key)
    assert info.encrypted
    raw = path.read_bytes()
    for text in [b"secret-agent", b"episodic", b"alice", b"hashing", b"created_at", b"records"]:
        assert text not in raw
    manifest = read_snapshot_manifest(path)
    assert manifest.sealed and manifest.encryption.scheme == "aes-256-gcm"
    assert manifest.agent is None and manifest.counts is None and manifest.parts == ()
    assert manifest.sha256 == info.sha256
    assert read_snapshot_manifest(path, key=key).agent == "secret-agent"
    assert verify_snapshot(path).sealed  # hashes check without the key
    other.import_snapshot(path, key=key)
    assert dump(other, "secret-agent") == dump(engine, "secret-agent")


def test_wrong_and_missing_keys(engine: MemoryEngine, other: MemoryEngine, tmp_path):
    engine.add_many(["alice likes tea"], agent="bot")
    raw, phrase = tmp_path / "raw.egm", tmp_path / "phrase.egm"
    engine.export_snapshot(raw, agent="bot", key=KEY)
    engine.export_snapshot(phrase, agent="bot", key="open sesame")
    assert "--key-file" in refused(other, raw, SnapshotKeyError)
    assert "passphrase" in refused(other, phrase, SnapshotKeyError)
    assert "wrong key" in refused(other, raw, SnapshotKeyError, key=bytes(32))
    assert "wrong key" in refused(other, phrase, SnapshotKeyError, key="open sesame!")
    assert "32-byte key" in refused(other, raw, SnapshotKeyError, key="a passphrase")
    with pytest.raises(SnapshotKeyError):
        read_snapshot_manifest(raw, key=bytes(32))


# -- every way a file can be wrong -----------------------------------------------------------


@pytest.mark.slow
def test_every_flipped_byte_is_refused(engine: MemoryEngine, small: Path, tmp_path):
    data = small.read_bytes()
    _, envelope, segments = parse(small)
    head = 14 + len(envelope) + len(segments[0])  # prefix, envelope, manifest: every byte
    positions = [*range(head), *range(head, len(data) - 64, 3), *range(len(data) - 64, len(data))]
    bad = tmp_path / "bad.egm"
    before = state(engine)
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (pos % 8)
        bad.write_bytes(flipped)
        with pytest.raises(SnapshotError):
            engine.import_snapshot(bad, agent="restored")
    assert state(engine) == before


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_flipped_bytes_in_sealed_files_are_refused(engine, small_sealed, data):
    path, blob = small_sealed
    pos = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(blob)
    flipped[pos] ^= 1 << bit
    path.write_bytes(flipped)
    before = state(engine)
    with pytest.raises(SnapshotError):
        engine.import_snapshot(path, agent="restored", key=KEY)
    assert state(engine) == before


@pytest.fixture
def small_sealed(engine: MemoryEngine, tmp_path: Path) -> tuple[Path, bytes]:
    engine.add_many(["alice likes tea", "bob flies monday"], agent="tiny")
    path = tmp_path / "sealed.egm"
    engine.export_snapshot(path, agent="tiny", key=KEY)
    return tmp_path / "damaged.egm", path.read_bytes()


@pytest.mark.slow
def test_truncation_at_any_point_is_refused(engine: MemoryEngine, small: Path, tmp_path):
    data = small.read_bytes()
    _, envelope, segments = parse(small)
    bounds, at = [14, 14 + len(envelope)], 14 + len(envelope)
    for seg in segments:
        at += len(seg)
        bounds.append(at)
    # every third length, and every length near the header and the segment boundaries
    sizes = {*range(0, len(data), 3), *range(64), *(b + d for b in bounds for d in (-1, 0, 1))}
    bad = tmp_path / "cut.egm"
    before = state(engine)
    for size in sorted(s for s in sizes if s < len(data)):
        bad.write_bytes(data[:size])
        with pytest.raises(SnapshotError):
            engine.import_snapshot(bad)
    bad.write_bytes(data + b"\0")
    with pytest.raises(SnapshotIntegrityError):
        engine.import_snapshot(bad)
    assert state(engine) == before


def test_large_segments_are_hashed_in_blocks(engine, other, tmp_path, monkeypatch):
    """Segments over HASH_BLOCK list per-block digests, checked on two threads."""
    from engramdb.snapshots import format as snapshot_format

    monkeypatch.setattr(snapshot_format, "HASH_BLOCK", 1024)
    monkeypatch.setattr(snapshot_format, "_THREADED_BYTES", 0)
    fill(engine)
    path = tmp_path / "bot.egm"
    engine.export_snapshot(path, agent="bot")
    _, envelope, segments = parse(path)
    entries = json.loads(envelope)["segments"]
    blocked = [i for i, e in enumerate(entries) if e.get("blocks")]
    assert blocked, "no segment was long enough to be split; grow the fixture"
    for i in blocked:
        digests = [hashlib.sha256(segments[i][j : j + 1024]).digest()
                   for j in range(0, len(segments[i]), 1024)]  # fmt: skip
        assert entries[i]["blocks"] == [d.hex() for d in digests]
        assert entries[i]["sha256"] == hashlib.sha256(b"".join(digests)).hexdigest()
    queries = ["alice tea", "flight monday"]
    other.import_snapshot(path)
    assert dump(other, "bot") == dump(engine, "bot")
    assert recall_ids(other, "bot", queries) == recall_ids(engine, "bot", queries)
    # one flipped byte in each block of a split segment is caught
    data = path.read_bytes()
    start = 14 + len(envelope) + sum(len(segments[j]) for j in range(blocked[0]))
    for pos in range(start + 7, start + len(segments[blocked[0]]), 1024):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        (tmp_path / "bad.egm").write_bytes(flipped)
        assert "SHA-256" in refused(
            other, tmp_path / "bad.egm", SnapshotIntegrityError, agent="copy"
        )
    # a forger who rewrites a block digest (and the root) is caught by the segment hash
    env = json.loads(envelope)
    env["segments"][blocked[0]]["blocks"][0] = "0" * 64
    raw = json.dumps(env).encode()
    head = struct.pack(">8sHI", MAGIC, 1, len(raw)) + raw
    (tmp_path / "bad.egm").write_bytes(head + b"".join(segments) + hashlib.sha256(head).digest())
    refused(other, tmp_path / "bad.egm", SnapshotIntegrityError, agent="copy")


def test_tampered_manifest_is_refused(engine: MemoryEngine, small: Path, tmp_path):
    _, envelope, segments = parse(small)
    body = json.loads(segments[0])
    bad = tmp_path / "bad.egm"
    # edited in place, hashes left alone: the manifest's hash catches it
    raw = small.read_bytes().replace(b'"agent":"tiny"', b'"agent":"tine"')
    bad.write_bytes(raw)
    assert "SHA-256 of its manifest" in refused(engine, bad, SnapshotIntegrityError)
    # edited by a careful forger who rehashes everything: the counts no longer add up
    body["counts"] = {**body["counts"], "total": 2, "kinds": {"episodic": 2}}
    body["counts"]["statuses"] = {"active": 2}
    assemble(bad, [json.dumps(body).encode(), *segments[1:]], json.loads(envelope))
    assert "rows" in refused(engine, bad, SnapshotError)
    # a part dropped
    body = json.loads(segments[0])
    body["parts"] = body["parts"][:2]
    assemble(bad, [json.dumps(body).encode(), *segments[1:3]], json.loads(envelope))
    assert "lacks its 'vectors' part" in refused(engine, bad, SnapshotError)
    # parts swapped: the records part where the vectors belong
    body = json.loads(segments[0])
    assemble(bad, [segments[0], segments[1], segments[2], segments[1]], json.loads(envelope))
    refused(engine, bad, SnapshotError)


def test_forged_sealed_file_is_refused(engine: MemoryEngine, small_sealed, tmp_path):
    _, blob = small_sealed
    sealed = tmp_path / "sealed.egm"
    sealed.write_bytes(blob)
    _, envelope, segments = parse(sealed)
    forged = bytearray(segments[1])
    forged[40] ^= 1
    assemble(sealed, [segments[0], bytes(forged), *segments[2:]], json.loads(envelope))
    msg = refused(engine, sealed, SnapshotKeyError, key=KEY)
    assert "altered after it was sealed" in msg
    # sealed segments swapped: each block is bound to its place
    assemble(sealed, [segments[0], segments[2], segments[1], segments[3]], json.loads(envelope))
    refused(engine, sealed, SnapshotKeyError, key=KEY)


def test_future_format_and_unknown_parts(engine: MemoryEngine, small: Path, tmp_path):
    version, envelope, segments = parse(small)
    assert version == FORMAT_VERSION
    bad = tmp_path / "future.egm"
    assemble(bad, segments, json.loads(envelope), version=FORMAT_VERSION + 1)
    assert "upgrade engramdb" in refused(engine, bad, SnapshotError)
    with pytest.raises(SnapshotError, match="newer than this engramdb"):
        read_snapshot_manifest(bad)
    # a part a newer writer added: required -> refused, optional -> skipped
    body = json.loads(segments[0])
    extra = segments[3]
    for required in (True, False):
        body["parts"] = [*json.loads(segments[0])["parts"], {
            "name": "emotions", "rows": 3, "required": required, "codec": "none"}]  # fmt: skip
        assemble(bad, [json.dumps(body).encode(), *segments[1:], extra], json.loads(envelope))
        if required:
            assert "needs part 'emotions'" in refused(engine, bad, SnapshotError)
        else:
            assert engine.import_snapshot(bad, agent="restored").added == 3


def test_not_a_snapshot(engine: MemoryEngine, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n" * 10)
    assert "not an engramdb snapshot" in refused(engine, text, SnapshotError)
    assert "no snapshot file" in refused(engine, tmp_path / "missing.egm", SnapshotError)
    assert "directory" in refused(engine, tmp_path, SnapshotError)


def test_bad_rows_from_a_broken_writer_are_refused(engine: MemoryEngine, tmp_path):
    import pyarrow as pa

    engine.add_many(["alice likes tea", "bob likes coffee"], agent="bot")
    rows = engine.table.scan_agent("bot")
    good = tmp_path / "good.egm"
    engine.export_snapshot(good, agent="bot")
    manifest = read_snapshot_manifest(good)

    def forge(column: str, values: list[Any], part: str = "records") -> Path:
        records = rows.select([c for c in rows.column_names if c not in (
            "agent", "vector", "parent_id", "source_ids")])  # fmt: skip
        provenance = rows.select(["parent_id", "source_ids"])
        target = records if part == "records" else provenance
        i = target.column_names.index(column)
        target = target.set_column(i, column, pa.array(values, target.schema.field(column).type))
        records, provenance = (target, provenance) if part == "records" else (records, target)
        vec = pa.table({"vector": rows.column("vector")})
        path = tmp_path / f"forged-{column}.egm"
        write_snapshot(
            path, agent="bot", created_at=NOW, engine_version="0", embedder=manifest.embedder,
            space="euclidean", counts=manifest.counts, vectors=manifest.vectors,
            parts=[Part("records", records), Part("provenance", provenance), Part("vectors", vec)],
        )  # fmt: skip
        return path

    before = state(engine)
    cases: list[tuple[str, list[Any], str, str]] = [
        ("id", ["x' OR agent != '", rows.column("id")[1].as_py()], "records", "ULID"),
        ("id", [rows.column("id")[0].as_py()] * 2, "records", "repeat"),
        ("text", ["   ", "fine"], "records", "empty"),
        ("session", ["..", None], "records", "session"),
        ("metadata", ["[1]", "{}"], "records", "JSON object"),
        ("importance", [1.5, 0.5], "records", "importance"),
        ("parent_id", ["nope", None], "provenance", "parent_id"),
    ]
    for column, values, part, message in cases:
        with pytest.raises(SnapshotError, match=message):
            engine.import_snapshot(forge(column, values, part), agent="copy")
    assert state(engine) == before


def test_different_embedder_is_refused_unless_reembedded(engine, tmp_path):
    fill(engine)
    path = tmp_path / "bot.egm"
    engine.export_snapshot(path, agent="bot")
    with MemoryEngine.open(tmp_path / "small", embedder="hashing-64") as other:
        msg = refused(other, path, EmbedderMismatchError)
        assert "hashing-256" in msg and "hashing-64" in msg and "reembed=True" in msg
        report = other.import_snapshot(path, reembed=True)
        assert report.reembedded and report.added == 12
        assert other.table.table.schema.field("vector").type.list_size == 64
        mine = {m["id"]: m for m in dump(engine, "bot")}
        assert {m["id"]: m for m in dump(other, "bot")} == mine
        first = next(iter(mine))
        hits = other.recall(mine[first]["text"], agent="bot", k=5, include_archived=True)
        assert first in [h.memory.id for h in hits]


# -- a killed import -------------------------------------------------------------------------

IMPORTER = """
import sys
from engramdb import MemoryEngine
eng = MemoryEngine.open(sys.argv[1], embedder="hashing")
print("ready", flush=True)
i = 0
while True:
    eng.import_snapshot(sys.argv[2 + i % 2], mode="replace")
    print(i, flush=True)
    i += 1
"""


@pytest.mark.slow
def test_import_killed_midway_leaves_one_whole_state(tmp_path: Path) -> None:
    store = tmp_path / "store"
    snaps, states = [], []
    for name, n in (("a", 400), ("b", 300)):
        with MemoryEngine.open(tmp_path / name, embedder="hashing") as src:
            src.add_many([f"{name} memory {i} " + WORDS[i % 20] for i in range(n)], agent="bot")
            src.export_snapshot(tmp_path / f"{name}.egm", agent="bot")
            states.append(dump(src, "bot"))
        snaps.append(str(tmp_path / f"{name}.egm"))
    rng = random.Random(7)
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", IMPORTER, str(store), *snaps], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.stdout.readline()  # one import done: the loop is running
        time.sleep(rng.uniform(0, 0.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with MemoryEngine.open(store, embedder="hashing") as eng:
            assert dump(eng, "bot") in states
    with MemoryEngine.open(store, embedder="hashing") as eng:
        eng.import_snapshot(snaps[0], mode="replace")  # the store still takes imports
        assert dump(eng, "bot") == states[0]
