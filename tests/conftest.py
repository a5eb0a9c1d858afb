"""Shared fixtures: every test runs offline, CPU-only, in its own temporary store."""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default data directory at tmp_path and keep everything offline.

    The temporary directory too: what the test, its libraries and its child
    processes put in $TMPDIR goes when tmp_path goes, even from a process the test
    kills (LanceDB's storage layer leaves a .tmpXXXXXX behind when killed mid-write).
    """
    monkeypatch.setenv("ENGRAMDB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))


S3_BUCKET = "engramdb-tests"


@dataclass(frozen=True)
class S3:
    """A moto S3 server on 127.0.0.1 with one bucket, and LanceDB's options to reach it."""

    endpoint: str
    options: dict[str, str]

    def fresh(self) -> str:
        """A store URI no other test uses."""
        return f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.options["aws_region"],
            aws_access_key_id=self.options["aws_access_key_id"],
            aws_secret_access_key=self.options["aws_secret_access_key"],
        )


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """A moto S3 server for the session, started on first use (in a thread of this process)."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    made = S3(
        endpoint=endpoint,
        options={
            "aws_endpoint": endpoint,
            "aws_region": "us-east-1",
            "aws_access_key_id": "testing-key-id",
            "aws_secret_access_key": "testing-secret-key",
            "allow_http": "true",
        },
    )
    made.client().create_bucket(Bucket=S3_BUCKET)  # type: ignore[attr-defined]
    try:
        yield made
    finally:
        server.stop()


@pytest.fixture
def store_kind() -> str:
    """Where ``store_path`` is: ``"local"``, or ``"s3"`` for tests marked ``s3`` (both run)."""
    return "local"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("s3") and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", ["local", "s3"])


@pytest.fixture
def store_path(
    tmp_path: Path, store_kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Path | str:
    """A fresh store: a directory, or (``store_kind == "s3"``) a URI on the moto server.

    For s3 the storage options come from ``ENGRAMDB_STORAGE_OPTIONS``, as a deployment
    would give them, and readers follow on every call as local readers do.
    """
    if store_kind == "local":
        return tmp_path / "store"
    server: S3 = request.getfixturevalue("s3")
    monkeypatch.setenv("ENGRAMDB_STORAGE_OPTIONS", json.dumps(server.options))
    monkeypatch.setenv("ENGRAMDB_FOLLOW_INTERVAL", "0")
    return server.fresh()


@pytest.fixture
def engine(store_path: Path) -> Iterator[object]:
    """A writable engine on the hashing embedder in a fresh store."""
    from engramdb import MemoryEngine

    eng = MemoryEngine.open(store_path, embedder="hashing")
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="session")
def minilm() -> object:
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from engramdb.embeddings import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(threads=2)
    emb.embed(["warm up"])
    return emb
