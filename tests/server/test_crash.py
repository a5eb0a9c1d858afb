"""A server killed with SIGKILL in the middle of writes keeps every write it acknowledged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from engramdb import MemoryEngine

from .conftest import running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(store: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engramdb.server",
            "serve",
            "--store",
            str(store),
            "--port",
            str(port),
            "--embedder",
            "hashing",
            "--log-level",
            "warning",
            "--no-mcp",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not start")


@pytest.mark.slow
def test_sigkill_during_writes_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    store, port = tmp_path / "store", _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(store, port)
    acked: list[str] = []
    try:
        _wait_healthy(url, proc)
        stop = threading.Event()

        def write() -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                for i in range(10_000):  # bounded; the kill ends it long before
                    if stop.is_set():
                        return
                    try:
                        r = c.post(
                            "/v1/agents/bot/memories/batch",
                            json={"items": [{"text": f"item {i} {j}"} for j in range(4)]},
                        )
                    except httpx.TransportError:
                        return
                    if r.status_code == 201:
                        acked.extend(m["id"] for m in r.json()["memories"])

        writers = [threading.Thread(target=write) for _ in range(2)]
        for t in writers:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 80 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in writers:
            t.join(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(acked) >= 80
    # Restart: a new server over the store, in this process (the kernel dropped the dead
    # writer's lock; a second subprocess would only add another torch import to wait for).
    with MemoryEngine.open(store, embedder="hashing") as engine, running(engine) as live:
        with live.client() as c:
            page = c.get("/v1/agents/bot/memories", params={"limit": 1000}).json()
        stored = {m["id"] for m in page["items"]}
        assert set(acked) <= stored
        # a batch cut by the kill is all or nothing: no partial batch is stored
        assert page["total"] % 4 == 0
