"""Concurrent writers and readers through HTTP: nothing lost, every write seen."""

from __future__ import annotations

import threading

import httpx

from .conftest import Live

WRITERS, PER_WRITER, READERS = 4, 15, 2


def test_concurrent_writers_and_readers_lose_nothing(live: Live) -> None:
    acked: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def write(n: int) -> None:
        with httpx.Client(base_url=live.url, timeout=60) as c:
            for i in range(PER_WRITER):
                if i % 5 == 4:
                    body = {"items": [{"text": f"w{n} batch {i} {j}"} for j in range(3)]}
                    r = c.post("/v1/agents/bot/memories/batch", json=body)
                    ids = [m["id"] for m in r.json()["memories"]] if r.status_code == 201 else []
                else:
                    r = c.post("/v1/agents/bot/memories", json={"text": f"w{n} note {i}"})
                    ids = [r.json()["id"]] if r.status_code == 201 else []
                with lock:
                    if r.status_code != 201:
                        errors.append(r.text)
                    acked.extend(ids)

    def read() -> None:
        with httpx.Client(base_url=live.url, timeout=60) as c:
            for _ in range(200):  # bounded, and stops once the writers are done
                if done.is_set():
                    return
                r = c.post("/v1/agents/bot/recall", json={"query": "note", "k": 5})
                if r.status_code != 200:
                    with lock:
                        errors.append(r.text)
                c.get("/v1/agents/bot/memories", params={"limit": 10})

    writers = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(120)
    done.set()
    for t in readers:
        t.join(60)
    assert errors == []
    expected = WRITERS * (PER_WRITER - PER_WRITER // 5 + 3 * (PER_WRITER // 5))
    assert len(acked) == len(set(acked)) == expected
    with httpx.Client(base_url=live.url) as c:
        page = c.get("/v1/agents/bot/memories", params={"limit": 1000}).json()
        assert page["total"] == expected
        assert {m["id"] for m in page["items"]} == set(acked)
        hits = c.post("/v1/agents/bot/recall", json={"query": "w3 note 7", "k": 1}).json()
        assert hits["hits"][0]["memory"]["text"] == "w3 note 7"
    assert live.engine.count(agent="bot") == expected
