"""Commands for the servers: ``engramdb serve``, ``engramdb mcp`` and ``engramdb keys add``.

:func:`register` adds them to a Typer app (the main ``engramdb`` CLI, or the
one ``python -m engramdb.server`` builds). Engine and server errors become a
one-line message on stderr and an exit code, in one place (:func:`_errors`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from engramdb.cli.common import STORE_HELP, StorageOptionsOption, store_location
from engramdb.cli.errors import cli_errors
from engramdb.errors import EngramError, ValidationError

if TYPE_CHECKING:
    from engramdb import MemoryEngine
    from engramdb.config import Settings

__all__ = ["register"]


Store = Annotated[str | None, typer.Option("--store", "-s", metavar="DIR|URI", help=STORE_HELP)]
ReadOnly = Annotated[
    bool,
    typer.Option(
        "--read-only",
        help="Serve without the writer lock (the lease, on object storage): recall follows "
        "the store's writer (every $ENGRAMDB_FOLLOW_INTERVAL seconds on object storage, "
        "1 by default), and writes are refused with 405, naming the writer.",
    ),
]
EmbedderOpt = Annotated[
    str, typer.Option("--embedder", "-e", help="'minilm', 'hashing' or a model name/path.")
]


MallocArenas = Annotated[
    int,
    typer.Option(
        min=0,
        help="Cap the C heap's arenas (glibc): a server holding many memories keeps less "
        "(MALLOC_ARENA_MAX in the environment wins; 0: the C library's default).",
    ),
]


def _limit_arenas(arenas: int) -> None:
    """Before any engine or thread: the servers hold many views for a long time."""
    if arenas:
        from engramdb.allocator import limit_malloc_arenas

        limit_malloc_arenas(arenas)


def _settings(role: str) -> Settings:
    """The environment's settings, the writer named after this server in its lease."""
    from engramdb.config import Settings

    settings = Settings()
    if settings.writer_name is not None:
        return settings
    who = f"{role} ({socket.gethostname()}:{os.getpid()})"
    return settings.model_copy(update={"writer_name": who})


def _warm_in_background(engine: MemoryEngine) -> None:
    """Load the embedding model in a thread, so the first request does not wait for it."""

    def warm() -> None:
        try:
            engine.embedder.embed(["warm up"])
        except EngramError as exc:  # reported again, to the client, on the first request
            print(f"engramdb: embedder not ready: {exc}", file=sys.stderr)

    threading.Thread(target=warm, name="engramdb-warmup", daemon=True).start()


def serve(
    store: Store = None,
    storage_option: StorageOptionsOption = None,
    read_only: ReadOnly = False,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8765,
    keys: Annotated[
        Path | None,
        typer.Option(help="TOML keys file; without it only loopback clients are served."),
    ] = None,
    embedder: EmbedderOpt = "minilm",
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1024 * 1024,
    max_snapshot_bytes: Annotated[int, typer.Option(help="Largest snapshot upload.")] = 512
    * 1024
    * 1024,
    rate: Annotated[float, typer.Option(help="Requests/s per key (0: no limit).")] = 200.0,
    burst: Annotated[int, typer.Option(help="Requests a key may send at once.")] = 400,
    heartbeat: Annotated[float, typer.Option(help="Seconds between SSE heartbeats.")] = 15.0,
    mcp: Annotated[bool, typer.Option(help="Mount MCP at /mcp.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    malloc_arenas: MallocArenas = 2,
) -> None:
    """Serve a store over HTTP (REST under /v1, MCP at /mcp, docs at /docs)."""
    _limit_arenas(malloc_arenas)
    import uvicorn

    from engramdb import MemoryEngine
    from engramdb.server.app import create_app
    from engramdb.server.config import ServerConfig, is_loopback
    from engramdb.server.keys import load_keys

    with cli_errors():
        if keys is None and not is_loopback(host):
            raise ValidationError(
                f"refusing to serve on {host!r} without keys: anyone who can reach it could "
                "read and write every agent; pass --keys FILE (see engramdb keys add), or bind "
                "127.0.0.1"
            )
        ring = load_keys(keys) if keys is not None else None
        config = ServerConfig(
            max_body_bytes=max_body_bytes,
            max_snapshot_bytes=max_snapshot_bytes,
            rate=rate,
            burst=burst,
            heartbeat=heartbeat,
            mcp=mcp,
        )
        settings = _settings(f"engramdb serve on http://{host}:{port}")
        where = store_location(store, storage_option)
        engine = MemoryEngine.open(where, embedder=embedder, read_only=read_only, settings=settings)
    _warm_in_background(engine)
    who = f"{len(ring)} key(s) from {keys}" if ring is not None else "loopback clients, no keys"
    mode = " read-only" if read_only else ""
    typer.echo(f"engramdb: serving{mode} {engine.path} to {who}; docs at /docs", err=True)
    try:
        app = create_app(engine, keys=ring, config=config, host=host)
        hub = app.state.engramdb.hub

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                hub.close()  # end event streams now, or shutdown waits for their clients
                super().handle_exit(sig, frame)

        server = Server(
            uvicorn.Config(
                app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5
            )
        )
        server.run()
    finally:
        engine.close()
    if not server.started:
        raise typer.Exit(1)


def mcp(
    agent: Annotated[str, typer.Option("--agent", "-a", help="The agent this server serves.")],
    store: Store = None,
    storage_option: StorageOptionsOption = None,
    read_only: ReadOnly = False,
    embedder: EmbedderOpt = "minilm",
    malloc_arenas: MallocArenas = 2,
) -> None:
    """Serve one agent's memory over MCP on stdio (for Claude Desktop and other clients).

    Only protocol goes to stdout; logs go to stderr. The store is opened at once
    (so a store another writer holds fails here, with a message on stderr), and
    the embedding model loads in the background while the client connects.
    """
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    _limit_arenas(malloc_arenas)
    from engramdb import MemoryEngine
    from engramdb.server.events import EventHub
    from engramdb.server.mcp import build_mcp_server
    from engramdb.server.schemas import NAME_PATTERN
    from engramdb.server.service import MemoryService

    with cli_errors():
        if not re.fullmatch(NAME_PATTERN, agent):
            raise ValidationError(
                f"agent name {agent!r} is not allowed; use 1 to 128 letters, digits or '-_.:@'"
            )
        where = store_location(store, storage_option)
        engine = MemoryEngine.open(
            where,
            embedder=embedder,
            read_only=read_only,
            settings=_settings(f"engramdb mcp for agent {agent}"),
        )
    service = MemoryService(engine, EventHub())

    _warm_in_background(engine)
    try:
        build_mcp_server(lambda: service, agent=agent).run("stdio")
    finally:
        engine.close()


def keys_add(
    file: Annotated[Path, typer.Option("--file", "-f", help="The TOML keys file (created).")],
    name: Annotated[str, typer.Option("--name", "-n", help="A label for the key.")],
    agents: Annotated[str, typer.Option(help="Comma-separated agent names or globs.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read, write, admin.")] = "read",
) -> None:
    """Add a key to FILE and print it once: the file keeps only its SHA-256."""
    from engramdb.server.keys import add_key

    with cli_errors():
        key = add_key(
            file,
            name=name,
            agents=[a.strip() for a in agents.split(",") if a.strip()],
            scopes=[s.strip() for s in scopes.split(",") if s.strip()],
        )
    typer.echo(key)
    typer.echo(f"added key {name!r} to {file}; it is shown only now, store it safely", err=True)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``mcp`` and ``keys add`` to a Typer app."""
    app.command("serve")(serve)
    app.command("mcp")(mcp)
    keys_app = typer.Typer(help="Manage the HTTP server's API keys.", no_args_is_help=True)
    keys_app.command("add")(keys_add)
    app.add_typer(keys_app, name="keys")
