"""Server-sent events: one per write, numbered per agent, replayed from Last-Event-ID."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from engramdb import MemoryEngine
from engramdb.server import ServerConfig

from .conftest import Live, running


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: Any
    comment: bool = False


class Reader:
    """Parse an SSE response into frames, with a deadline on every wait."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next(self, *, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        comment = False
        while time.monotonic() < deadline:
            line = next(self.lines)
            if line == "":
                if fields or comment:
                    data = fields.get("data")
                    return Frame(
                        id=int(fields["id"]) if "id" in fields else None,
                        event=fields.get("event"),
                        data=json.loads(data) if data and data[0] in "{[" else data,
                        comment=comment and not fields,
                    )
                continue
            if line.startswith(":"):
                comment = True
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise TimeoutError("no SSE frame in time")

    def events(self, n: int, *, timeout: float = 5.0) -> list[Frame]:
        out: list[Frame] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            frame = self.next(timeout=deadline - time.monotonic())
            if frame.event is not None:
                out.append(frame)
        assert len(out) == n, out
        return out


def test_each_write_is_an_event_and_a_reconnect_replays_the_missed(live: Live) -> None:
    with live.client() as c, live.client(timeout=10) as s:
        with s.stream("GET", "/v1/agents/bot/events") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            reader = Reader(r)
            reader.next()  # the opening comment: the stream is subscribed
            m = c.post("/v1/agents/bot/memories", json={"text": "first"}).json()
            c.post("/v1/agents/other/memories", json={"text": "not bot's"})
            c.patch(f"/v1/agents/bot/memories/{m['id']}", json={"importance": 0.7})
            c.delete(f"/v1/agents/bot/memories/{m['id']}")
            c.post("/v1/agents/bot/memories/batch", json={"items": [{"text": "a"}, {"text": "b"}]})
            c.post("/v1/agents/bot/checkpoints", json={"name": "cp"})
            c.post("/v1/agents/bot/consolidate", json={})
            c.post("/v1/agents/bot/rollback", json={"name": "cp"})
            frames = reader.events(7)
        assert [f.event for f in frames] == [
            "memory.added",
            "memory.updated",
            "memory.deleted",
            "memory.added",
            "memory.added",
            "agent.consolidated",
            "agent.restored",
        ]
        assert [f.id for f in frames] == list(range(1, 8))
        assert frames[0].data["data"]["text"] == "first"
        assert frames[1].data["data"]["importance"] == 0.7
        assert frames[2].data["data"] == {"id": m["id"]}
        assert all(f.data["agent"] == "bot" for f in frames)

        c.post("/v1/agents/bot/memories", json={"text": "while away 1"})
        c.post("/v1/agents/bot/memories", json={"text": "while away 2"})
        with s.stream("GET", "/v1/agents/bot/events", headers={"Last-Event-ID": "5"}) as r:
            replay = Reader(r).events(4)
        assert [f.id for f in replay] == [6, 7, 8, 9]
        assert replay[-1].data["data"]["text"] == "while away 2"


def test_heartbeat_on_an_idle_stream(live: Live) -> None:
    with live.client(timeout=10) as s, s.stream("GET", "/v1/agents/bot/events") as r:
        reader = Reader(r)
        reader.next()
        frame = reader.next(timeout=3)  # heartbeat every 0.5 s in the fixture
        assert frame.comment and frame.event is None


def test_a_gap_past_the_backlog_is_reported(engine: MemoryEngine) -> None:
    config = ServerConfig(backlog=4, heartbeat=0.5)
    with running(engine, config=config) as live, live.client() as c:
        for i in range(10):
            c.post("/v1/agents/bot/memories", json={"text": f"m{i}"})
        with c.stream("GET", "/v1/agents/bot/events", headers={"Last-Event-ID": "2"}) as r:
            frames = Reader(r).events(5)
        assert frames[0].event == "events.lost" and frames[0].data["after"] == 2
        assert [f.id for f in frames[1:]] == [7, 8, 9, 10]
        # an id from the future (a restarted server) also says so, then replays
        with c.stream("GET", "/v1/agents/bot/events", headers={"Last-Event-ID": "99"}) as r:
            frames = Reader(r).events(5)
        assert frames[0].event == "events.lost"
        bad = c.get("/v1/agents/bot/events", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["error"]["message"]
