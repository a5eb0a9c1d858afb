"""The HTTP server: a FastAPI app over one engine, with MCP mounted at ``/mcp``.

Example::

    engine = MemoryEngine.open("./mem")
    app = create_app(engine, keys=load_keys("keys.toml"))
    uvicorn.run(app, host="127.0.0.1", port=8765)

The server is the store's one writer. Endpoints that touch the engine are plain
functions, which FastAPI runs in its thread pool, so requests run concurrently
and the engine's lock orders them; the event loop itself never blocks on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from engramdb import MemoryEngine, __version__
from engramdb.errors import EngramError
from engramdb.server import routes, routes_admin
from engramdb.server.config import ServerConfig, ServerState
from engramdb.server.deps import authenticate
from engramdb.server.errors import error_response, install_error_handlers
from engramdb.server.events import EventHub
from engramdb.server.keys import LOCAL, KeyRing
from engramdb.server.limits import BodyLimit, RateLimiter
from engramdb.server.metrics import MetricsMiddleware
from engramdb.server.service import MemoryService

__all__ = ["create_app"]


class _McpEndpoint:
    """``/mcp``: the MCP session manager behind the server's own key check."""

    def __init__(self, state: ServerState, manager: Any) -> None:
        self.state = state
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        try:
            key = authenticate(
                self.state, headers.get("authorization"), client[0] if client else None
            )
            scope.setdefault("state", {})["key_name"] = key.name
        except EngramError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)


def create_app(
    engine: MemoryEngine,
    *,
    keys: KeyRing | None = None,
    config: ServerConfig | None = None,
    host: str = "127.0.0.1",
) -> FastAPI:
    """The HTTP app serving ``engine``; the caller keeps ownership of the engine.

    Args:
        engine: An open, writable engine.
        keys: Accepted API keys; None serves loopback clients only, with every right.
        config: Limits, heartbeat, backlog, whether to mount MCP.
        host: The address the server binds (for MCP's DNS-rebinding protection).
    """
    config = config or ServerConfig()
    hub = EventHub(backlog=config.backlog, heartbeat=config.heartbeat)
    state = ServerState(
        service=MemoryService(engine, hub),
        config=config,
        keys=keys,
        limiter=RateLimiter(rate=config.rate, burst=config.burst),
    )
    mcp_manager: Any = None
    if config.mcp:
        from engramdb.server.mcp import build_mcp_server

        def gate(ctx: Any, agent: str, scope: str) -> None:
            headers = ctx.headers or {}
            key = keys.authenticate(headers.get("authorization")) if keys is not None else LOCAL
            key.check(agent, scope)

        mcp = build_mcp_server(lambda: state.service, gate=gate)
        mcp.streamable_http_app(
            streamable_http_path="/mcp",
            stateless_http=True,
            json_response=True,
            max_request_body_size=config.max_body_bytes,
            host=host,
        )
        mcp_manager = mcp.session_manager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if mcp_manager is not None:
                async with mcp_manager.run():
                    yield
            else:
                yield
        finally:
            hub.close()

    app = FastAPI(
        title="engramdb",
        version=__version__,
        description="Vector memory for AI agents: the Python API over HTTP.",
        lifespan=lifespan,
    )
    app.state.engramdb = state
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(routes_admin.router)
    if mcp_manager is not None:
        app.router.routes.append(Route("/mcp", endpoint=_McpEndpoint(state, mcp_manager)))

    def limit_for(path: str) -> int:
        if path.startswith("/v1/agents/") and path.endswith("/snapshot"):
            return config.max_snapshot_bytes
        return config.max_body_bytes

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
