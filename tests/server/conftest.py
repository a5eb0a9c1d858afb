"""Real servers for the server tests: uvicorn on 127.0.0.1, a free port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engramdb import MemoryEngine
from engramdb.server import KeyRing, ServerConfig, add_key, create_app, load_keys


@dataclass
class Live:
    """A running server: its base URL, the engine behind it, the uvicorn server."""

    url: str
    engine: MemoryEngine
    server: uvicorn.Server

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)


@contextmanager
def running(
    engine: MemoryEngine, *, keys: KeyRing | None = None, config: ServerConfig | None = None
) -> Iterator[Live]:
    """Serve ``engine`` on 127.0.0.1 (port chosen by the OS) until the block ends."""
    app = create_app(engine, keys=keys, config=config)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Live(url=f"http://127.0.0.1:{port}", engine=engine, server=server)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[MemoryEngine]:
    eng = MemoryEngine.open(tmp_path / "store", embedder="hashing")
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def live(engine: MemoryEngine) -> Iterator[Live]:
    """A keyless server (loopback only, every right)."""
    with running(engine, config=ServerConfig(heartbeat=0.5)) as server:
        yield server


@dataclass
class Keys:
    """Keys: alice and bob (read/write), alice's admin, team-* (read/write), alice's reader,
    and ops (admin of every agent)."""

    alice: str
    bob: str
    alice_admin: str
    team: str
    reader: str
    ops: str


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, Keys]:
    path = tmp_path / "keys.toml"
    made = Keys(
        alice=add_key(path, name="alice", agents=["alice"], scopes=["read", "write"]),
        bob=add_key(path, name="bob", agents=["bob"], scopes=["read", "write"]),
        alice_admin=add_key(path, name="alice-admin", agents=["alice"], scopes=["admin"]),
        team=add_key(path, name="team", agents=["team-*"], scopes=["read", "write"]),
        reader=add_key(path, name="reader", agents=["alice"], scopes=["read"]),
        ops=add_key(path, name="ops", agents=["*"], scopes=["admin"]),
    )
    return path, made


@pytest.fixture
def keyed(engine: MemoryEngine, keys_file: tuple[Path, Keys]) -> Iterator[tuple[Live, Keys]]:
    """A server with keys."""
    path, made = keys_file
    with running(engine, keys=load_keys(path), config=ServerConfig(heartbeat=0.5)) as server:
        yield server, made


Seed = Callable[..., list[str]]
