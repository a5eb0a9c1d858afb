"""Prometheus metrics: requests, latencies, and memories per agent, in the text format.

Request metrics are labelled by route template (``/v1/agents/{agent}/recall``),
never by agent, and by the key that made the request. A scrape shows a key the
series of its own requests and the memory counts of its own agents; only a key
with admin over every agent (``agents = ["*"]``, as a keyless server's local
client has) sees everything. So traffic to ``bob`` tells ``alice``'s key nothing,
not even that it happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BUCKETS", "Metrics", "MetricsMiddleware"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency histogram bounds, in seconds."""


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counts and latency histograms, safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str, str], int] = {}
        # (key, method, route) -> bucket counts, then sum, then count
        self._latency: dict[tuple[str, str, str], list[float]] = {}

    def observe(self, key: str, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request made with ``key`` (a key name; ``-`` if none)."""
        with self._lock:
            series = (key, method, route, str(status))
            self._requests[series] = self._requests.get(series, 0) + 1
            hist = self._latency.setdefault((key, method, route), [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[i] += 1.0
            hist[-2] += seconds
            hist[-1] += 1

    def render(self, memories: Iterable[tuple[str, int]], *, key: str | None) -> str:
        """The Prometheus text, with the given per-agent memory counts.

        Args:
            memories: (agent, count) pairs to show.
            key: Show only this key's request series; None shows every key's.
        """
        lines = [
            "# HELP engramdb_http_requests_total HTTP requests by key, method, route and status.",
            "# TYPE engramdb_http_requests_total counter",
        ]
        with self._lock:
            requests = sorted(s for s in self._requests.items() if key in (None, s[0][0]))
            latency = sorted((k, list(v)) for k, v in self._latency.items() if key in (None, k[0]))
        for (who, method, route, status), n in requests:
            lines.append(
                f'engramdb_http_requests_total{{key="{_label(who)}",method="{method}",'
                f'route="{_label(route)}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP engramdb_http_request_duration_seconds HTTP request latency.",
            "# TYPE engramdb_http_request_duration_seconds histogram",
        ]
        for (who, method, route), hist in latency:
            labels = f'key="{_label(who)}",method="{method}",route="{_label(route)}"'
            for bound, seen in zip(BUCKETS, hist, strict=False):
                lines.append(
                    f'engramdb_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                    f"{seen:g}"
                )
            lines.append(
                f'engramdb_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {hist[-1]:g}'
            )
            lines.append(f"engramdb_http_request_duration_seconds_sum{{{labels}}} {hist[-2]:.6f}")
            lines.append(f"engramdb_http_request_duration_seconds_count{{{labels}}} {hist[-1]:g}")
        lines += [
            "# HELP engramdb_memories Unexpired memories per agent (agents this key may see).",
            "# TYPE engramdb_memories gauge",
        ]
        for agent, n in memories:
            lines.append(f'engramdb_memories{{agent="{_label(agent)}"}} {n}')
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """ASGI middleware timing each HTTP request into a :class:`Metrics`."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is None:
                route = "/mcp" if scope["path"].startswith("/mcp") else "unmatched"
            who = str(scope.get("state", {}).get("key_name", "-"))
            self.metrics.observe(who, scope["method"], route, status, time.perf_counter() - start)
