"""The ``engramdb`` command line: the Python API, one command per call.

Feature commands live in modules of their own (:mod:`.consolidate`,
:mod:`.snapshot`) and register on :data:`app` when imported at the bottom.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from engramdb.cli.errors import exit_code
from engramdb.engine import MemoryEngine
from engramdb.errors import EngramError

__all__ = ["StoreOption", "app", "console", "err_console", "open_engine"]

app = typer.Typer(
    name="engramdb",
    help="A vector-memory engine for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

StoreOption = Annotated[
    Path | None, typer.Option("--store", "-s", help="Store directory (default: the user data dir).")
]
EmbedderOption = Annotated[
    str, typer.Option("--embedder", "-e", help="'minilm', 'hashing' or a model name/path.")
]
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def open_engine(store: Path | None, embedder: str, **kwargs: Any) -> Iterator[MemoryEngine]:
    """Open an engine for a command, turning engine errors into a message and exit code."""
    try:
        with MemoryEngine.open(store, embedder=embedder, **kwargs) as engine:
            yield engine
    except EngramError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(exit_code(exc)) from None


@app.command()
def add(
    text: str,
    agent: Annotated[str, typer.Option("--agent", "-a")],
    kind: Annotated[str, typer.Option("--kind", "-k")] = "episodic",
    session: Annotated[str | None, typer.Option("--session")] = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="JSON object.")] = None,
    importance: Annotated[float | None, typer.Option("--importance")] = None,
    store: StoreOption = None,
    embedder: EmbedderOption = "minilm",
) -> None:
    """Store one memory and print its id."""
    meta = _json_arg(metadata, "--metadata")
    with open_engine(store, embedder) as engine:
        try:
            memory = engine.add(
                text,
                agent=agent,
                kind=kind,
                session=session,
                metadata=meta,
                importance=importance,
            )
        except EngramError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(exit_code(exc)) from None
        console.print(memory.id)


@app.command()
def recall(
    query: str,
    agent: Annotated[str, typer.Option("--agent", "-a")],
    k: Annotated[int, typer.Option("-k")] = 5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    store: StoreOption = None,
    embedder: EmbedderOption = "minilm",
) -> None:
    """Print the memories most relevant to QUERY."""
    with open_engine(store, embedder) as engine:
        try:
            hits = engine.recall(query, agent=agent, k=k)
        except EngramError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(exit_code(exc)) from None
        if as_json:
            out = [
                {"score": h.score, "similarity": h.similarity, **h.memory.model_dump(mode="json")}
                for h in hits
            ]
            sys.stdout.write(json.dumps(out, indent=2) + "\n")
            return
        table = Table("score", "kind", "text", "id")
        for h in hits:
            table.add_row(f"{h.score:.3f}", h.memory.kind.value, h.memory.text, h.memory.id)
        console.print(table)


@app.command()
def stats(store: StoreOption = None, embedder: EmbedderOption = "minilm") -> None:
    """Print each agent's memory count."""
    with open_engine(store, embedder, read_only=True) as engine:
        table = Table("agent", "memories")
        for name in engine.agents():
            table.add_row(name, str(engine.count(agent=name)))
        console.print(table)


def _json_arg(value: str | None, flag: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        err_console.print(f"[red]error:[/red] {flag} {value!r} is not JSON ({exc})")
        raise typer.Exit(2) from None
    if not isinstance(parsed, dict):
        err_console.print(f"[red]error:[/red] {flag} {value!r} must be a JSON object")
        raise typer.Exit(2)
    return parsed


def _register_feature_commands() -> None:
    # Feature modules add their commands to ``app``; a missing one is simply absent.
    import importlib

    for name in ("engramdb.cli.consolidate", "engramdb.cli.snapshot"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    # The servers (serve, mcp, keys) register themselves; their heavy imports wait
    # until a server command runs.
    from engramdb.server.cli import register

    register(app)


_register_feature_commands()
