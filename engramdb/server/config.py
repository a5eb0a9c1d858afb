"""The HTTP server's settings and its shared state."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from engramdb.errors import ValidationError
from engramdb.server.events import DEFAULT_BACKLOG, DEFAULT_HEARTBEAT, EventHub
from engramdb.server.keys import KeyRing
from engramdb.server.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SNAPSHOT_BYTES, RateLimiter
from engramdb.server.metrics import Metrics
from engramdb.server.service import MemoryService

__all__ = ["ServerConfig", "ServerState", "is_loopback"]

DEFAULT_RATE = 200.0
DEFAULT_BURST = 400


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the HTTP server behaves.

    Attributes:
        max_body_bytes: Largest request body (413 above it); snapshots excepted.
        max_snapshot_bytes: Largest snapshot upload.
        rate: Requests per second per key (0: no limit).
        burst: Requests a key may send at once.
        heartbeat: Seconds between SSE heartbeats on an idle event stream.
        backlog: Events kept per agent for ``Last-Event-ID`` replay.
        mcp: Mount the MCP endpoint at ``/mcp``.
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES
    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    heartbeat: float = DEFAULT_HEARTBEAT
    backlog: int = DEFAULT_BACKLOG
    mcp: bool = True

    def __post_init__(self) -> None:
        positive = {
            "max_body_bytes": self.max_body_bytes,
            "max_snapshot_bytes": self.max_snapshot_bytes,
            "burst": self.burst,
            "heartbeat": self.heartbeat,
            "backlog": self.backlog,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValidationError(f"{name} {value!r} must be positive")
        if self.rate < 0:
            raise ValidationError(f"rate {self.rate!r} must be 0 (no limit) or positive")


@dataclass
class ServerState:
    """What the routes share: the service, keys (None: loopback only), limiter, metrics."""

    service: MemoryService
    config: ServerConfig
    keys: KeyRing | None
    limiter: RateLimiter
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def hub(self) -> EventHub:
        return self.service.hub
