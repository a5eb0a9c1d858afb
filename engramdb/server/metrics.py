"""Prometheus metrics: requests, latencies, and memories per agent, in the text format.

Request metrics are labelled by route template (``/v1/agents/{agent}/recall``),
never by agent, so they reveal nothing about agents a key may not see; the
per-agent gauge lists only the agents of the key that scrapes.
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
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # bucket counts, then sum, count

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        with self._lock:
            key = (method, route, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._latency.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[i] += 1.0
            hist[-2] += seconds
            hist[-1] += 1

    def render(self, memories: Iterable[tuple[str, int]]) -> str:
        """The Prometheus text exposition, with the given per-agent memory counts."""
        lines = [
            "# HELP engramdb_http_requests_total HTTP requests by method, route and status.",
            "# TYPE engramdb_http_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted((k, list(v)) for k, v in self._latency.items())
        for (method, route, status), n in requests:
            lines.append(
                f'engramdb_http_requests_total{{method="{method}",route="{_label(route)}",'
                f'status="{status}"}} {n}'
            )
        lines += [
            "# HELP engramdb_http_request_duration_seconds HTTP request latency.",
            "# TYPE engramdb_http_request_duration_seconds histogram",
        ]
        for (method, route), hist in latency:
            labels = f'method="{method}",route="{_label(route)}"'
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
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)
