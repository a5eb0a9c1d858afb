"""Stores on S3-compatible object storage: locations, the writer lease, readers, credentials.

Everything runs against a moto S3 server on 127.0.0.1 (the session's ``s3`` fixture);
nothing leaves the machine.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engramdb import MemoryEngine
from engramdb.cli.app import app
from engramdb.config import Settings
from engramdb.errors import (
    NotFoundError,
    ReadOnlyError,
    StoreIOError,
    StoreLockedError,
    ValidationError,
)
from engramdb.store.lease import LEASE_FILE
from engramdb.store.location import StoreLocation

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-7f1d0c9a-never-printed"


def _until(check: Any, *, within: float, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(every)


def _open(uri: str, s3: Any, **kwargs: Any) -> MemoryEngine:
    return MemoryEngine.open(uri, storage_options=s3.options, embedder="hashing", **kwargs)


# -- locations ---------------------------------------------------------------------------------


def test_locations_are_parsed_checked_and_masked() -> None:
    where = StoreLocation.of("s3://bucket/team/mem/", {"aws_secret_access_key": SECRET})
    assert (where.uri, where.bucket, where.prefix) == ("s3://bucket/team/mem", "bucket", "team/mem")
    assert where.key("engramdb.json") == "team/mem/engramdb.json"
    assert SECRET not in repr(where) and SECRET not in str(where)
    assert where.redact(f"request failed with {SECRET}") == "request failed with ***"
    assert StoreLocation.of("file:///tmp/x").is_local
    assert StoreLocation.of(Path("rel/dir")).path == Path("rel/dir")
    with pytest.raises(ValidationError, match="credentials") as info:
        StoreLocation.of(f"s3://key:{SECRET}@bucket/p")
    assert SECRET not in str(info.value)
    with pytest.raises(ValidationError, match="no bucket"):
        StoreLocation.of("s3:///prefix")
    with pytest.raises(ValidationError, match="query"):
        StoreLocation.of("s3://bucket/p?region=x")
    with pytest.raises(ValidationError, match="string"):
        StoreLocation.of("s3://bucket/p", {"allow_http": True})  # type: ignore[dict-item]


def test_schemes_without_conditional_writes_are_refused_before_anything_is_written() -> None:
    with pytest.raises(ValidationError, match=r"gs://.*s3://"):
        MemoryEngine.open("gs://bucket/p", embedder="hashing")


def test_a_missing_bucket_or_store_is_a_clear_error(s3: Any) -> None:
    with pytest.raises(StoreIOError, match=r"no-such-bucket.*does not exist"):
        _open("s3://no-such-bucket/p", s3)
    with pytest.raises(NotFoundError, match="no store at s3://"):
        _open(s3.fresh(), s3, read_only=True)


# -- everything a local store does -------------------------------------------------------------


def test_readers_follow_the_writer_and_writes_go_to_the_writer(s3: Any) -> None:
    uri = s3.fresh()
    fast = Settings(follow_interval=timedelta(seconds=0.2), writer_name="writer-one")
    with _open(uri, s3, settings=fast) as writer:
        ids = [m.id for m in writer.add_many(["roses need water", "tulips in spring"], agent="a")]
        with _open(uri, s3, read_only=True, settings=fast) as reader:
            assert len(reader.recall("roses", agent="a", k=5)) == 2
            writer.add("the lawn needs mowing", agent="a")
            writer.update(ids[0], agent="a", text="roses need sun")
            writer.delete(ids[1], agent="a")

            def seen() -> list[str]:
                return sorted(h.memory.text for h in reader.recall("garden", agent="a", k=5))

            assert _until(lambda: seen() == ["roses need sun", "the lawn needs mowing"], within=10)
            with pytest.raises(ReadOnlyError, match="writer-one"):
                reader.add("not here", agent="a")


def test_compaction_and_cleanup_of_old_versions(s3: Any) -> None:
    settings = Settings(compact_every=1000, version_retention=timedelta(0))
    with _open(s3.fresh(), s3, settings=settings) as engine:
        for i in range(12):
            engine.add(f"note {i}", agent="a")
        engine.checkpoint(agent="a", name="kept")
        before = len(engine.store.versions())
        engine.compact()
        after = engine.store.versions()
        assert len(after) < before
        assert engine.store.tags()  # the checkpoint's version survives the cleanup
        assert engine.count(agent="a") == 12
        assert len(engine.store.table.to_lance().get_fragments()) == 1


# -- the writer lease -------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder_until_the_first_closes(s3: Any) -> None:
    uri = s3.fresh()
    first = _open(uri, s3, settings=Settings(writer_name="first-writer"))
    try:
        with pytest.raises(StoreLockedError, match=r"first-writer \(its lease expires at"):
            _open(uri, s3)
        first.add("still writable", agent="a")
    finally:
        first.close()
    with _open(uri, s3) as second:
        assert second.count(agent="a") == 1


def test_an_expired_lease_is_taken_over(s3: Any) -> None:
    uri = s3.fresh()
    _open(uri, s3).close()
    where = StoreLocation.of(uri)
    ghost = {"owner": "ghost:1", "token": "x", "ttl_seconds": 1, "format": 1}
    s3.client().put_object(Bucket=where.bucket, Key=where.key(LEASE_FILE), Body=json.dumps(ghost))
    with pytest.raises(StoreLockedError, match="ghost:1"):
        _open(uri, s3)

    def opened() -> MemoryEngine | None:
        try:
            return _open(uri, s3)
        except StoreLockedError:
            return None

    engine = _until(opened, within=10, every=0.25)
    assert engine is not None, "the expired lease was never taken over"
    engine.add("after the takeover", agent="a")
    engine.close()


def test_a_writer_whose_lease_was_taken_stops_writing(s3: Any) -> None:
    uri = s3.fresh()
    engine = _open(uri, s3, settings=Settings(lease_ttl=timedelta(seconds=1)))
    try:
        engine.add("before", agent="a")
        where = StoreLocation.of(uri)
        thief = {"owner": "thief:2", "token": "y", "ttl_seconds": 60, "format": 1}
        s3.client().put_object(
            Bucket=where.bucket, Key=where.key(LEASE_FILE), Body=json.dumps(thief)
        )

        def refused() -> bool:
            try:
                engine.add("after", agent="a")
            except StoreLockedError as exc:
                return "lost the writer lease" in str(exc)
            return False

        assert _until(refused, within=10, every=0.2)
    finally:
        engine.close()
    with _open(uri, s3, read_only=True) as reader:
        texts = [m.text for m in reader.list(agent="a", limit=None)]
    assert texts[0] == "before"  # an "after" written before the renewal noticed may follow


WRITER = """
import sys
from datetime import timedelta
from engramdb import MemoryEngine
from engramdb.config import Settings
uri, options = sys.argv[1], __import__("json").loads(sys.argv[2])
settings = Settings(lease_ttl=timedelta(seconds=2), writer_name="child-writer")
engine = MemoryEngine.open(uri, storage_options=options, embedder="hashing", settings=settings)
i = 0
while True:
    memory = engine.add(f"acknowledged note {i}", agent="a")
    print(memory.id, flush=True)
    i += 1
"""


@pytest.mark.slow
def test_a_killed_writer_loses_no_acknowledged_write_and_its_lease_expires(s3: Any) -> None:
    uri = s3.fresh()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, uri, json.dumps(s3.options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    acked: list[str] = []
    try:
        assert child.stdout is not None
        while len(acked) < 15:
            line = child.stdout.readline()
            assert line, "the writer process ended before writing"
            acked.append(line.strip())
        with pytest.raises(StoreLockedError, match="child-writer"):
            _open(uri, s3)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        acked.extend(line.strip() for line in child.stdout if line.strip())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)

    def opened() -> MemoryEngine | None:
        try:
            return _open(uri, s3)
        except StoreLockedError:
            return None

    engine = _until(opened, within=20, every=0.25)
    assert engine is not None, "the killed writer's lease never expired"
    with engine:
        stored = {m.id for m in engine.list(agent="a", limit=None)}
    assert set(acked) <= stored


# -- credentials never leave ------------------------------------------------------------------


def test_credentials_never_appear_in_text(
    s3: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="engramdb")
    options = {**s3.options, "aws_secret_access_key": SECRET}
    uri = s3.fresh()
    texts: list[str] = []
    with MemoryEngine.open(uri, storage_options=options, embedder="hashing") as engine:
        engine.add("the user prefers tea", agent="a")
        info = engine.export_snapshot(tmp_path / "a.egm", agent="a")
        texts += [repr(engine), repr(engine.location), str(engine.path), repr(engine.settings)]
        texts.append((tmp_path / "a.egm").read_bytes().decode("latin-1"))
        texts.append(repr(info))
    with pytest.raises(StoreIOError) as missing:
        MemoryEngine.open("s3://no-such-bucket/p", storage_options=options, embedder="hashing")
    texts.append(str(missing.value))
    monkeypatch.setenv("ENGRAMDB_STORAGE_OPTIONS", json.dumps({"aws_secret_access_key": [SECRET]}))
    with pytest.raises(ValidationError) as bad:
        Settings()
    texts.append(str(bad.value))
    monkeypatch.setenv("ENGRAMDB_STORAGE_OPTIONS", '{"aws_secret_access_key": ' + SECRET)
    with pytest.raises(ValidationError, match="must be JSON") as not_json:
        Settings()
    texts.append(str(not_json.value))
    monkeypatch.setenv("ENGRAMDB_STORAGE_OPTIONS", json.dumps(options))
    texts.append(repr(Settings()))
    result = CliRunner().invoke(app, ["stats", "--json", "--store", uri])
    assert result.exit_code == 0, result.output
    texts.append(result.output)
    texts.append(caplog.text)
    assert all(SECRET not in text for text in texts)


def test_the_cli_works_on_s3_with_storage_options(s3: Any) -> None:
    uri = s3.fresh()
    flags = [f"--storage-option={key}={value}" for key, value in s3.options.items()]
    runner = CliRunner()
    added = runner.invoke(
        app, ["add", "Alice moved to Lisbon", "-a", "bot", "-e", "hashing", "-s", uri, *flags]
    )
    assert added.exit_code == 0, added.output
    found = runner.invoke(app, ["recall", "Lisbon", "-a", "bot", "-s", uri, "--json", *flags])
    assert found.exit_code == 0, found.output
    assert "Alice moved to Lisbon" in found.output
    consolidated = runner.invoke(app, ["consolidate", "--all", "-s", uri, "--json", *flags])
    assert consolidated.exit_code == 0, consolidated.output
    assert json.loads(consolidated.output)["store"] == uri
    bad = runner.invoke(app, ["stats", "-s", uri, "--storage-option", SECRET])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output and SECRET not in bad.output
