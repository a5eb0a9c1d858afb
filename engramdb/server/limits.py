"""Request limits: body size (413) and a per-key token-bucket rate limit (429)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engramdb.server.errors import PayloadTooLargeError, RateLimitedError, error_body

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_SNAPSHOT_BYTES", "BodyLimit", "RateLimiter"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
_BUFFER_UP_TO = 16 * 1024 * 1024
"""Chunked bodies to limits up to this are read whole before the app sees them."""


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second, bursts of up to ``burst``.

    Args:
        rate: Sustained requests per second per key; 0 turns the limit off.
        burst: Requests a key may make at once after being idle.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def check(self, key: str) -> None:
        """Take one token for ``key``.

        Raises:
            RateLimitedError: the bucket is empty; ``retry_after`` says when a token is back.
        """
        if self.rate <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitedError(
                    f"rate limit of {self.rate:g} requests/s (bursts of {self.burst}) reached for "
                    f"key {key!r}; retry after {wait:.2f} s",
                    retry_after=wait,
                )
            self._buckets[key] = (tokens - 1.0, now)


class BodyLimit:
    """ASGI middleware: refuse request bodies over a limit with 413, before they are read.

    A declared ``Content-Length`` over the limit is refused at once; a chunked
    body is counted as it arrives and refused when it passes the limit.

    Args:
        app: The wrapped application.
        limit_for: The byte limit for a request path.
    """

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > limit:
                await _too_large(send, limit, size)
                return
        if limit <= _BUFFER_UP_TO and declared is None:
            # A chunked body to a small limit: read it here, so the app never sees a body
            # that is too large (FastAPI would report an error inside the body as a 400).
            messages: list[Message] = []
            seen = 0
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                seen += len(message.get("body", b""))
                if seen > limit:
                    await _too_large(send, limit, -1)
                    return
                if not message.get("more_body", False):
                    break
            replay = iter(messages)

            async def replayed() -> Message:
                return next(replay, None) or await receive()

            await self.app(scope, replayed, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLargeError(_message(limit, seen))
            return message

        await self.app(scope, counted, send)


def _message(limit: int, size: int) -> str:
    what = f"request body of {size} bytes" if size >= 0 else "request body"
    return (
        f"{what} exceeds the limit of {limit} bytes; send less, or start the "
        "server with a larger limit (--max-body-bytes)"
    )


async def _too_large(send: Send, limit: int, size: int) -> None:
    body = json.dumps(error_body("payload_too_large", _message(limit, size))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
