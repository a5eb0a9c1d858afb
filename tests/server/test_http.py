"""Every REST route and every error status, against a real uvicorn server."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from engramdb.server import ServerConfig

from .conftest import Live, running


def _add(c: httpx.Client, agent: str, text: str, **fields: object) -> dict[str, object]:
    r = c.post(f"/v1/agents/{agent}/memories", json={"text": text, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert "Traceback" not in message
    return message


def test_health_needs_nothing_and_says_nothing_else(live: Live) -> None:
    with live.client() as c:
        assert c.get("/v1/health").json() == {"status": "ok"}


def test_add_then_recall_sees_it(live: Live) -> None:
    with live.client() as c:
        m = _add(
            c,
            "bot",
            "the user prefers window seats",
            kind="semantic",
            session="s1",
            metadata={"topic": "travel"},
            importance=0.9,
            created_at="2026-01-02T03:04:05+01:00",
            ttl=3600,
        )
        assert m["kind"] == "semantic" and m["session"] == "s1" and m["importance"] == 0.9
        created = datetime.fromisoformat(str(m["created_at"]))
        assert created.utcoffset() is not None and created.hour == 2  # stored in UTC
        hits = c.post("/v1/agents/bot/recall", json={"query": "window seats", "k": 3}).json()
        assert hits["hits"][0]["memory"]["id"] == m["id"]
        assert {"score", "similarity"} <= set(hits["hits"][0])
        child = _add(c, "bot", "aisle is fine on short flights", parent=m["id"])
        assert child["parent_id"] == m["id"]


def test_recall_takes_every_argument(live: Live) -> None:
    with live.client() as c:
        a = _add(c, "bot", "paris trip notes", metadata={"topic": "travel"}, session="s1")
        _add(c, "bot", "paris is in france", kind="semantic", metadata={"topic": "geo"})
        body = {
            "query": "paris",
            "k": 5,
            "kinds": ["episodic"],
            "session": "s1",
            "where": {"topic": "travel"},
            "since": "2000-01-01T00:00:00Z",
            "until": "2999-01-01T00:00:00Z",
            "include_archived": True,
            "now": "2030-01-01T00:00:00Z",
            "record_access": False,
            "scope": "all",
            "rank": "similarity",
        }
        hits = c.post("/v1/agents/bot/recall", json=body).json()["hits"]
        assert [h["memory"]["id"] for h in hits] == [a["id"]]
        vector = [1.0] + [0.0] * (live.engine.embedder.dim - 1)
        r = c.post("/v1/agents/bot/recall", json={"query": vector, "k": 1})
        assert r.status_code == 200 and len(r.json()["hits"]) == 1
        sub = c.post(
            "/v1/agents/bot/recall",
            json={"query": "paris", "scope": "subtree", "root": a["id"]},
        )
        assert [h["memory"]["id"] for h in sub.json()["hits"]] == [a["id"]]


def test_batch_list_get_patch_delete(live: Live) -> None:
    with live.client() as c:
        r = c.post(
            "/v1/agents/bot/memories/batch",
            json={"items": [{"text": f"note {i}", "session": "s"} for i in range(5)]},
        )
        assert r.status_code == 201
        ids = [m["id"] for m in r.json()["memories"]]
        assert len(ids) == 5
        page = c.get("/v1/agents/bot/memories", params={"limit": 2, "offset": 1}).json()
        assert page["total"] == 5 and [m["id"] for m in page["items"]] == ids[1:3]
        only = c.get("/v1/agents/bot/memories", params={"kind": "semantic"}).json()
        assert only == {"items": [], "total": 0}
        assert c.get(f"/v1/agents/bot/memories/{ids[0]}").json()["text"] == "note 0"
        r = c.patch(
            f"/v1/agents/bot/memories/{ids[0]}", json={"text": "note zero", "importance": 1}
        )
        assert r.status_code == 200 and r.json()["text"] == "note zero"
        assert r.json()["importance"] == 1.0
        assert c.delete(f"/v1/agents/bot/memories/{ids[0]}").status_code == 204
        _error(c.get(f"/v1/agents/bot/memories/{ids[0]}"), 404, "not_found")
        assert c.get("/v1/agents").json() == {"agents": ["bot"]}


def test_brief_route(live: Live) -> None:
    with live.client() as c:
        _add(c, "bot", "always answer in French", kind="procedural", importance=0.9)
        _add(c, "bot", "draft reply", kind="working", session="s9")
        r = c.get("/v1/agents/bot/brief", params={"session": "s9", "budget_tokens": 200})
        body = r.json()
        assert r.status_code == 200 and body["tokens"] <= 200
        assert body["text"].index("Working memory") < body["text"].index("Instructions")
        _error(c.get("/v1/agents/bot/brief", params={"budget_tokens": 0}), 422, "invalid")


def test_consolidate_checkpoints_rollback_and_delete_agent(live: Live) -> None:
    with live.client() as c:
        for i in range(3):
            _add(c, "bot", f"the same fact {i % 1}")
        r = c.post("/v1/agents/bot/checkpoints", json={"name": "before"})
        assert r.status_code == 201 and r.json()["name"] == "before"
        _error(c.post("/v1/agents/bot/checkpoints", json={"name": "before"}), 409, "conflict")
        names = [x["name"] for x in c.get("/v1/agents/bot/checkpoints").json()["checkpoints"]]
        assert names == ["before"]
        report = c.post("/v1/agents/bot/consolidate", json={"dry_run": True}).json()
        assert report["dry_run"] is True and report["agent"] == "bot"
        report = c.post("/v1/agents/bot/consolidate", json={}).json()
        assert report["changed"] is True
        active = c.get("/v1/agents/bot/memories").json()
        every = c.get("/v1/agents/bot/memories", params={"include_archived": True}).json()
        assert every["total"] > active["total"] == len(active["items"])
        assert every["total"] == len(every["items"])
        r = c.post("/v1/agents/bot/rollback", json={"name": "before"})
        assert r.status_code == 200 and r.json()["memories"] == 3
        _error(c.post("/v1/agents/bot/rollback", json={"name": "nope"}), 404, "not_found")
        assert c.delete("/v1/agents/bot").json() == {"deleted": 3}
        assert c.get("/v1/agents").json() == {"agents": []}


def test_snapshot_round_trip_and_409(live: Live) -> None:
    with live.client() as c:
        for i in range(4):
            _add(c, "bot", f"memory number {i}")
        r = c.get("/v1/agents/bot/snapshot", params={"vectors": "int8"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        data = r.content
        _error(c.post("/v1/agents/bot/snapshot", content=data), 409, "conflict")
        copy = c.post("/v1/agents/bot/snapshot", params={"as_agent": "bot2"}, content=data)
        assert copy.status_code == 200 and copy.json()["added"] == 4
        assert c.get("/v1/agents/bot2/memories").json()["total"] == 4
        merged = c.post("/v1/agents/bot/snapshot", params={"mode": "merge"}, content=data)
        assert merged.json()["added"] == 0
        _error(c.post("/v1/agents/bot3/snapshot", content=b"not a snapshot"), 422, "bad_snapshot")
        _error(c.post("/v1/agents/bot3/snapshot", content=b""), 422, "invalid")
        _error(c.get("/v1/agents/ghost/snapshot"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/v1/agents/bot/memories", {"text": ""}, "text"),
        ("post", "/v1/agents/bot/memories", {"text": "x", "kind": "dream"}, "kind"),
        ("post", "/v1/agents/bot/memories", {"text": "x", "importance": 2}, "importance"),
        ("post", "/v1/agents/bot/memories", {"text": "x", "bogus": 1}, "bogus"),
        ("post", "/v1/agents/bot/memories", {"text": "x", "ttl": 1e300}, "ttl"),
        (
            "post",
            "/v1/agents/bot/memories",
            {"text": "x", "created_at": "0001-01-01"},
            "created_at",
        ),
        ("post", "/v1/agents/b%20ot/memories", {"text": "x"}, "agent"),
        ("post", "/v1/agents/bot/memories/batch", {"items": []}, "items"),
        ("post", "/v1/agents/bot/recall", {"query": "x", "k": 100000}, "k"),
        ("post", "/v1/agents/bot/recall", {"query": "x", "where": {"$bad": 1}}, "$bad"),
        ("post", "/v1/agents/bot/recall", {"query": "   "}, "query"),
        ("post", "/v1/agents/bot/recall", {"query": [1.0, 2.0]}, "dim"),
        ("get", "/v1/agents/bot/memories?limit=5000", None, "limit"),
        ("get", "/v1/agents/bot/memories/not-an-id", None, "memory_id"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    live: Live, method: str, path: str, body: object, field: str
) -> None:
    with live.client() as c:
        r = c.request(method, path, json=body)
        assert field in _error(r, 422, "invalid")


def test_bad_json_is_422_not_500(live: Live) -> None:
    with live.client() as c:
        r = c.post(
            "/v1/agents/bot/memories",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        _error(r, 422, "invalid")
        _error(c.get("/v1/nowhere"), 404, "not_found")
        _error(c.put("/v1/health"), 405, "method_not_allowed")


def test_body_limit_413(engine: object) -> None:
    from engramdb import MemoryEngine

    assert isinstance(engine, MemoryEngine)
    with running(engine, config=ServerConfig(max_body_bytes=2048)) as server, server.client() as c:
        r = c.post("/v1/agents/bot/memories", json={"text": "x" * 4096})
        assert "limit of 2048" in _error(r, 413, "payload_too_large")

        def chunks() -> object:
            for _ in range(8):
                yield b'{"text": "' + b"y" * 512

        r = c.post(
            "/v1/agents/bot/memories",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        _error(r, 413, "payload_too_large")
        assert engine.count() == 0


def test_rate_limit_429_with_retry_after(engine: object) -> None:
    from engramdb import MemoryEngine

    assert isinstance(engine, MemoryEngine)
    with running(engine, config=ServerConfig(rate=0.5, burst=3)) as server, server.client() as c:
        codes = [c.get("/v1/agents").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[-1] == 429
        r = c.get("/v1/agents")
        _error(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        assert c.get("/v1/health").status_code == 200  # health is not limited


def test_openapi_and_docs(live: Live) -> None:
    with live.client() as c:
        spec = c.get("/openapi.json").json()
        assert "/v1/agents/{agent}/recall" in spec["paths"]
        assert c.get("/docs").status_code == 200


def test_closed_store_is_503(live: Live) -> None:
    with live.client() as c:
        live.engine.close()
        _error(c.get("/v1/agents"), 503, "store_closed")


def test_snapshot_upload_limit_413(engine: object) -> None:
    from engramdb import MemoryEngine

    assert isinstance(engine, MemoryEngine)
    config = ServerConfig(max_snapshot_bytes=1000)
    with running(engine, config=config) as server, server.client() as c:
        r = c.post("/v1/agents/bot/snapshot", content=b"x" * 5000)
        assert "limit of 1000" in _error(r, 413, "payload_too_large")

        def chunks() -> object:
            for _ in range(10):
                yield b"y" * 500

        r = c.post("/v1/agents/bot/snapshot", content=chunks())
        _error(r, 413, "payload_too_large")
        assert engine.count() == 0
