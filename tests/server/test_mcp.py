"""MCP: the SDK's own client in memory, over streamable HTTP with a key, and over stdio."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from engramdb import MemoryEngine
from engramdb.server.events import EventHub
from engramdb.server.mcp import CAP_TOKENS, build_mcp_server
from engramdb.server.service import MemoryService

from .conftest import Keys, Live

TOOLS = {"remember", "recall", "brief", "update_memory", "forget", "list_memories"}


def _text(block: Any) -> str:
    return str(getattr(block, "text", ""))


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


async def _exercise(client: Client, agent_args: dict[str, str]) -> None:
    """Every tool, the resources and the prompt, as one agent would use them."""
    a = agent_args
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    notes = {name: t.annotations for name, t in tools.items()}
    assert notes["recall"] is not None and notes["recall"].read_only_hint is True
    assert notes["forget"] is not None and notes["forget"].destructive_hint is True
    assert notes["remember"] is not None and notes["remember"].destructive_hint is False
    assert ("agent" in tools["recall"].input_schema["properties"]) == bool(a)
    assert tools["recall"].output_schema is not None

    m = _data(
        await client.call_tool("remember", {**a, "text": "likes green tea", "kind": "semantic"})
    )
    assert m["kind"] == "semantic"
    await client.call_tool("remember", {**a, "text": "answer briefly", "kind": "procedural"})
    hits = _data(await client.call_tool("recall", {**a, "query": "green tea", "k": 2}))["hits"]
    assert hits[0]["memory"]["id"] == m["id"]
    brief = _data(await client.call_tool("brief", {**a, "query": "tea", "budget_tokens": 100}))
    assert "green tea" in brief["text"] and brief["tokens"] <= 100
    upd = _data(await client.call_tool("update_memory", {**a, "id": m["id"], "importance": 0.9}))
    assert upd["importance"] == 0.9
    page = _data(await client.call_tool("list_memories", {**a, "limit": 1}))
    assert page["total"] == 2 and len(page["items"]) == 1
    bad = await client.call_tool("recall", {**a, "query": "x", "where": {"$nope": 1}})
    assert bad.is_error and "$nope" in _text(bad.content[0])
    agent = a.get("agent", "solo")
    stats = await client.read_resource(f"engram://{agent}/stats")
    assert json.loads(_text(stats.contents[0]))["memories"] == 2
    one = await client.read_resource(f"engram://{agent}/memories/{m['id']}")
    assert json.loads(_text(one.contents[0]))["text"] == "likes green tea"
    prompt = await client.get_prompt("recall_context", {**a, "topic": "tea"})
    assert "green tea" in _text(prompt.messages[0].content)
    assert _data(await client.call_tool("forget", {**a, "id": m["id"]})) == {
        "id": m["id"],
        "deleted": True,
    }


def test_in_memory_client_fixed_agent(engine: MemoryEngine) -> None:
    server = build_mcp_server(lambda: MemoryService(engine, EventHub()), agent="solo")

    async def main() -> None:
        async with Client(server) as client:
            await _exercise(client, {})
            with pytest.raises(MCPError, match="serves agent 'solo' only"):
                await client.read_resource("engram://someone-else/stats")

    anyio.run(main)


def test_outputs_are_capped(engine: MemoryEngine) -> None:
    engine.add_many([("word " * 2000) + str(i) for i in range(40)], agent="solo")
    server = build_mcp_server(lambda: MemoryService(engine, EventHub()), agent="solo")

    async def main() -> dict[str, Any]:
        async with Client(server) as client:
            result = await client.call_tool("list_memories", {"limit": 40})
            return dict(_data(result))

    page = anyio.run(main)
    assert page["truncated"] is True and "cut to" in page["note"]
    assert len(json.dumps(page)) < CAP_TOKENS * 4 * 1.5
    assert page["total"] == 40


def test_streamable_http_with_keys(keyed: tuple[Live, Keys]) -> None:
    live, k = keyed

    async def main() -> None:
        headers = {"Authorization": f"Bearer {k.alice}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as c:
                await _exercise(c, {"agent": "alice"})
                refused = await c.call_tool("recall", {"agent": "bob", "query": "secret"})
                assert refused.is_error and "may not use agent 'bob'" in _text(refused.content[0])
                refused = await c.call_tool("remember", {"agent": "bob", "text": "sneak"})
                assert refused.is_error
                with pytest.raises(MCPError, match="may not use agent 'bob'"):
                    await c.read_resource("engram://bob/stats")
                with pytest.raises(MCPError, match="may not use agent 'bob'"):
                    await c.get_prompt("recall_context", {"agent": "bob", "topic": "plans"})
        async with httpx2.AsyncClient(timeout=30) as anon:
            r = await anon.post(
                f"{live.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
            )
            assert r.status_code == 401

    anyio.run(main)
    assert live.engine.agents() == ["alice"]


def _stdio_args(store: Path) -> list[str]:
    return [
        "-m",
        "engramdb.server",
        "mcp",
        "--store",
        str(store),
        "--agent",
        "solo",
        "--embedder",
        "hashing",
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.mark.slow
def test_stdio_sdk_client_and_clean_stdout(tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "stdout.log"
    command = shlex.join([sys.executable, *_stdio_args(store)])
    # tee keeps a copy of everything the server writes on stdout, to check it after.
    params = StdioServerParameters(
        command="sh", args=["-c", f"{command} | tee {shlex.quote(str(log))}"], env=_env()
    )
    timings: dict[str, float] = {}

    async def main() -> None:
        started = time.monotonic()
        async with Client(params, mode="legacy") as client:
            timings["handshake"] = time.monotonic() - started
            await _exercise(client, {})

    anyio.run(main)
    lines = log.read_text().splitlines()
    assert len(lines) >= 10
    for line in lines:  # nothing but JSON-RPC on stdout
        assert json.loads(line)["jsonrpc"] == "2.0"
    print(f"stdio handshake after {timings['handshake']:.2f} s (process start included)")
    # The process must import engramdb (and torch) before it can answer; the model
    # loads in the background. Bounded loosely: the machine may be busy.
    assert timings["handshake"] < 30
