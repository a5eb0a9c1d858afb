"""Server-sent events: each agent's changes, numbered, with a bounded backlog to replay.

Writes publish from worker threads; streams read from the event loop. Each agent
has its own sequence (1, 2, ...) so an agent's stream reveals nothing about any
other agent, not even how busy it is. A client that reconnects with
``Last-Event-ID: n`` gets every event after ``n`` still in the backlog; if some
fell out of it (or the server restarted and the id is from before), the stream
first says so with an ``events.lost`` event, then replays what it has.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["EVENT_TYPES", "Event", "EventHub", "sse_frame"]

EVENT_TYPES = (
    "memory.added",
    "memory.updated",
    "memory.deleted",
    "agent.consolidated",
    "agent.restored",
)
DEFAULT_BACKLOG = 1024
DEFAULT_HEARTBEAT = 15.0


@dataclass(frozen=True, slots=True)
class Event:
    """One change to one agent's memory."""

    seq: int
    type: str
    agent: str
    at: datetime
    data: dict[str, Any]

    def frame(self) -> str:
        body = {
            "seq": self.seq,
            "type": self.type,
            "agent": self.agent,
            "at": self.at.isoformat(),
            "data": self.data,
        }
        return sse_frame(json.dumps(body, separators=(",", ":")), event=self.type, id=self.seq)


def sse_frame(data: str, *, event: str | None = None, id: int | None = None) -> str:
    """One SSE frame (``data`` must be one line, as JSON without indentation is)."""
    head = (f"id: {id}\n" if id is not None else "") + (f"event: {event}\n" if event else "")
    return f"{head}data: {data}\n\n"


class _Subscriber:
    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()

    def notify(self) -> None:
        self.loop.call_soon_threadsafe(self.wake.set)


class EventHub:
    """Per-agent event logs with bounded backlogs, and the live streams reading them.

    Args:
        backlog: Events kept per agent for replay.
        heartbeat: Seconds between heartbeat comments on an idle stream.
    """

    def __init__(
        self, *, backlog: int = DEFAULT_BACKLOG, heartbeat: float = DEFAULT_HEARTBEAT
    ) -> None:
        self.backlog = backlog
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._logs: dict[str, deque[Event]] = {}
        self._seq: dict[str, int] = {}
        self._subscribers: set[_Subscriber] = set()
        self._closed = False

    def publish(self, agent: str, type: str, data: dict[str, Any]) -> Event:
        """Record an event (from any thread) and wake the agent's streams."""
        with self._lock:
            seq = self._seq.get(agent, 0) + 1
            self._seq[agent] = seq
            event = Event(seq=seq, type=type, agent=agent, at=datetime.now(UTC), data=data)
            self._logs.setdefault(agent, deque(maxlen=self.backlog)).append(event)
            waiting = [s for s in self._subscribers if s.agent == agent]
        for sub in waiting:
            try:
                sub.notify()
            except RuntimeError:  # its loop is closed: the stream is gone
                pass
        return event

    def last_seq(self, agent: str) -> int:
        """The agent's latest sequence number (0 before any event)."""
        with self._lock:
            return self._seq.get(agent, 0)

    def since(self, agent: str, after: int) -> tuple[list[Event], bool]:
        """Events of ``agent`` after sequence ``after``, and whether some were lost."""
        with self._lock:
            log = list(self._logs.get(agent, ()))
            current = self._seq.get(agent, 0)
        if after > current:  # an id from before a restart: everything may be missed
            return log, True
        events = [e for e in log if e.seq > after]
        first = log[0].seq if log else current + 1
        return events, after < current and after + 1 < first

    def close(self) -> None:
        """End every stream (at server shutdown)."""
        with self._lock:
            self._closed = True
            subs = list(self._subscribers)
        for sub in subs:
            try:
                sub.notify()
            except RuntimeError:
                pass

    async def stream(self, agent: str, last_event_id: int | None) -> AsyncIterator[str]:
        """SSE frames for ``agent``: replay after ``last_event_id``, then live, with heartbeats."""
        sub = _Subscriber(agent)
        with self._lock:
            self._subscribers.add(sub)
            cursor = self._seq.get(agent, 0) if last_event_id is None else last_event_id
        try:
            yield f"retry: 2000\n: stream of agent {agent}\n\n"
            while not self._closed:
                sub.wake.clear()
                events, lost = self.since(agent, cursor)
                if lost:
                    note = {"after": cursor, "oldest": events[0].seq if events else None}
                    yield sse_frame(json.dumps(note), event="events.lost")
                    cursor = 0
                for event in events:
                    yield event.frame()
                    cursor = event.seq
                if self._closed:
                    break
                try:
                    await asyncio.wait_for(sub.wake.wait(), self.heartbeat)
                except TimeoutError:
                    yield ": heartbeat\n\n"
        finally:
            with self._lock:
                self._subscribers.discard(sub)
