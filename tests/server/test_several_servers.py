"""Several servers over one store on object storage (a moto S3 server on 127.0.0.1).

One server holds the writer lease; the others serve read-only and follow its
commits every ``follow_interval``. A write acknowledged by the writer is
recalled through a reader within that interval plus one read; a write sent to a
reader is refused with 405, naming the writer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engramdb import MemoryEngine
from engramdb.config import Settings

from .conftest import running

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.3
"""The readers' follow interval in these tests (seconds)."""


def _recalled(client: httpx.Client, agent: str, text: str) -> bool:
    reply = client.post(f"/v1/agents/{agent}/recall", json={"query": text, "k": 5})
    if reply.status_code == 404:  # the agent is not there yet
        return False
    reply.raise_for_status()
    return any(hit["memory"]["text"] == text for hit in reply.json()["hits"])


def _within(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_write_through_the_writer_is_recalled_through_a_reader(s3: Any) -> None:
    uri = s3.fresh()
    settings = Settings(follow_interval=timedelta(seconds=INTERVAL), writer_name="server-a")
    with ExitStack() as stack:
        writer = stack.enter_context(
            MemoryEngine.open(
                uri, storage_options=s3.options, embedder="hashing", settings=settings
            )
        )
        writer.add("seed", agent="bot")
        reader = stack.enter_context(
            MemoryEngine.open(
                uri,
                storage_options=s3.options,
                embedder="hashing",
                read_only=True,
                settings=settings,
            )
        )
        a = stack.enter_context(running(writer))
        b = stack.enter_context(running(reader))
        with a.client() as to_a, b.client() as to_b:
            for i in range(3):
                text = f"the user moved to Lisbon in year {2020 + i}"
                assert to_a.post("/v1/agents/bot/memories", json={"text": text}).status_code == 201
                assert _within(lambda t=text: _recalled(to_b, "bot", t), 10 * INTERVAL + 10)
            refused = to_b.post("/v1/agents/bot/memories", json={"text": "to the reader"})
            assert refused.status_code == 405
            assert "server-a" in refused.text
            assert not _recalled(to_a, "bot", "to the reader")


@contextmanager
def _serving(uri: str, options: dict[str, str], *processes: tuple[str, ...]) -> Iterator[list[str]]:
    """``engramdb serve`` processes on 127.0.0.1, started together; yields their base URLs.

    Each entry of ``processes`` is the extra flags of one server.
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ENGRAMDB_STORAGE_OPTIONS": json.dumps(options),
        "ENGRAMDB_FOLLOW_INTERVAL": str(INTERVAL),
    }
    started: list[tuple[subprocess.Popen[str], str]] = []
    try:
        for flags in processes:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            command = [sys.executable, "-m", "engramdb.server", "serve", "--store", uri]
            command += ["--host", "127.0.0.1", "--port", str(port), "--embedder", "hashing"]
            command += ["--no-mcp", "--log-level", "warning", *flags]
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            started.append((process, f"http://127.0.0.1:{port}"))
        for process, url in started:

            def up(process: subprocess.Popen[str] = process, url: str = url) -> bool:
                if process.poll() is not None:
                    err = process.stderr.read() if process.stderr else ""
                    raise AssertionError(f"serve exited: {err}")
                try:
                    return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            assert _within(up, 60), "serve did not start"
        yield [url for _, url in started]
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(15)


@pytest.mark.slow
def test_a_read_only_serve_process_follows_the_writer(s3: Any) -> None:
    """``engramdb serve --read-only`` in a process of its own, the writer in this one."""
    uri = s3.fresh()
    settings = Settings(writer_name="server-a")
    with MemoryEngine.open(
        uri, storage_options=s3.options, embedder="hashing", settings=settings
    ) as engine:
        engine.add("seed", agent="bot")  # the store exists before the reader opens it
        with (
            running(engine) as writer,
            writer.client() as to_a,
            _serving(uri, s3.options, ("--read-only",)) as (reader,),
            httpx.Client(base_url=reader, timeout=30) as to_b,
        ):
            text = "the user moved to Lisbon"
            assert to_a.post("/v1/agents/bot/memories", json={"text": text}).status_code == 201
            assert _within(lambda: _recalled(to_b, "bot", text), 10 * INTERVAL + 10)
            refused = to_b.post("/v1/agents/bot/memories", json={"text": "to the reader"})
            assert refused.status_code == 405 and "server-a" in refused.text
