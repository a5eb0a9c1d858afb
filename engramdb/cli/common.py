"""What every command shares: the command group, the common options, opening the store.

Imports only typer and engramdb's errors: a command imports the engine when it runs.
Every command opens the store with the embedder and space that built it (read
from its ``engramdb.json``) unless ``-e`` says otherwise. Short options mean
one thing in every command: ``-a`` agent, ``-s`` store, ``-e`` embedder, ``-k``
how many, ``-m`` mode, ``-f`` force.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from engramdb._version import __version__
from engramdb.cli.errors import cli_errors
from engramdb.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from engramdb.embeddings import Embedder
    from engramdb.engine import MemoryEngine
    from engramdb.store.location import StoreLocation

__all__ = [
    "COMMANDS",
    "KINDS",
    "KIND_METAVAR",
    "STORE_HELP",
    "AgentOption",
    "EmbedderOption",
    "JsonOption",
    "Kind",
    "StorageOptionsOption",
    "StoreOption",
    "app",
    "json_object",
    "open_engine",
    "parse_storage_options",
    "require_agent",
    "store_location",
    "store_root",
    "when",
]


class Kind(StrEnum):
    """The memory kinds, spelled out here so ``--help`` lists them without importing the records."""

    EPISODIC = "episodic"
    SEMANTIC = "semantic"
    PROCEDURAL = "procedural"
    WORKING = "working"


KINDS: tuple[str, ...] = tuple(Kind)
KIND_METAVAR = "[" + "|".join(KINDS) + "]"


COMMANDS = (
    "add",
    "recall",
    "stats",
    "consolidate",
    "export",
    "import",
    "snapshot-info",
    "checkpoint",
    "rollback",
    "checkpoints",
    "checkpoint-delete",
)
"""The order ``--help`` lists the commands in (any others follow)."""


class EngramGroup(TyperGroup):
    """The command group: every command runs inside :func:`cli_errors`."""

    # typer hands its commands a typer.Context; the base class names the click one it
    # derives from (vendored as typer._click in recent typer, plain click before).
    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        with cli_errors():
            return super().invoke(ctx)

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMANDS.index(n) if n in COMMANDS else len(COMMANDS))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"engramdb {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="engramdb",
    cls=EngramGroup,
    help="A vector-memory engine for AI agents: write, recall, consolidate and carry memories.",
    epilog="Exit codes: 0 done, 1 partly failed, 2 bad input, 3 not found, 4 store locked, "
    "5 embedder mismatch, 6 snapshot error, 7 model unavailable, 8 store format, "
    "130 interrupted (see the README).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """A vector-memory engine for AI agents: write, recall, consolidate and carry memories."""


STORE_HELP = (
    "Store directory, or s3://BUCKET/PREFIX on object storage "
    "[default: $ENGRAMDB_HOME/default, else the user data dir]."
)
STORAGE_OPTION_HELP = (
    "A LanceDB storage option for an s3:// store, KEY=VALUE (repeatable): aws_endpoint, "
    "aws_region, aws_access_key_id, aws_secret_access_key, allow_http=true, ... "
    "[default: the JSON object in $ENGRAMDB_STORAGE_OPTIONS]."
)
StoreOption = Annotated[
    str | None,
    typer.Option("--store", "-s", metavar="DIR|URI", help=STORE_HELP, show_default=False),
]
StorageOptionsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option", metavar="KEY=VALUE", help=STORAGE_OPTION_HELP, show_default=False
    ),
]
EmbedderOption = Annotated[
    str | None,
    typer.Option(
        "--embedder",
        "-e",
        metavar="NAME",
        help="minilm, hashing, hashing-DIM, or a sentence-transformers model name or path "
        "[default: the embedder that built the store; minilm for a new store].",
        show_default=False,
    ),
]
AgentOption = Annotated[
    str, typer.Option("--agent", "-a", metavar="NAME", help="Whose memory.", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def store_root(store: str | Path | None) -> Path:
    """The local store directory a command works on (see :func:`store_location`)."""
    if store is not None:
        return Path(store)
    from engramdb.config import default_store_path

    return default_store_path()


def parse_storage_options(pairs: list[str] | None) -> dict[str, str]:
    """``--storage-option KEY=VALUE`` values as a dict (a value is never echoed: it may be
    a secret)."""
    out = {}
    for number, pair in enumerate(pairs or [], start=1):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError(
                f"--storage-option number {number} is not KEY=VALUE (it has "
                f"{'no key' if sep else 'no ='}); write it as --storage-option aws_region=us-east-1"
            )
        out[key.strip()] = value
    return out


def store_location(store: str | Path | None, options: list[str] | None = None) -> StoreLocation:
    """Where a command's store lives: ``--store`` (a directory or a URI) and its options.

    Options come from ``$ENGRAMDB_STORAGE_OPTIONS`` (a JSON object), overridden key by
    key by ``--storage-option``.
    """
    from engramdb.config import Settings
    from engramdb.store.location import StoreLocation

    env = {k: v.get_secret_value() for k, v in Settings().storage_options.items()}
    given = parse_storage_options(options)
    target: str | Path = store if store is not None else store_root(None)
    return StoreLocation.of(target, {**env, **given})


def _store_embedder(meta: dict[str, Any]) -> Embedder:
    """The store's own embedder, loaded only if the command embeds something."""
    from engramdb.embeddings import DeferredEmbedder, EmbedderInfo, resolve_embedder
    from engramdb.embeddings.sentence import DEFAULT_MODEL_NAME

    info = EmbedderInfo(**meta["embedder"])
    # The bundled model is recorded by its model name; "minilm" loads it offline.
    spec = "minilm" if info[0] == DEFAULT_MODEL_NAME else info[0]
    return DeferredEmbedder(info, lambda: resolve_embedder(spec))


@contextmanager
def open_engine(
    store: str | Path | None,
    embedder: str | None,
    *,
    read_only: bool = False,
    create: bool = False,
    options: list[str] | None = None,
) -> Iterator[MemoryEngine]:
    """Open the store with its own embedder and space (or the embedder given).

    Args:
        store: The ``--store`` given, if any.
        embedder: The ``-e`` given, if any; else the one that built the store.
        read_only: Open without the writer lock.
        create: Create the store if there is none (``add`` and ``import`` do).
        options: The ``--storage-option KEY=VALUE`` values given, if any.

    Raises:
        NotFoundError: there is no store there and ``create`` is false.
    """
    from engramdb.engine import MemoryEngine
    from engramdb.store.meta import read_meta

    root = store_location(store, options)
    meta = read_meta(root) if not root.is_local or root.path.is_dir() else None
    if meta is None and (read_only or not create):
        raise NotFoundError(
            f"no store at {root}; give --store DIR (or s3://BUCKET/PREFIX with its "
            "--storage-option values), or create one with engramdb add TEXT --agent NAME"
        )
    spec: str | Embedder = embedder or (_store_embedder(meta) if meta else "minilm")
    space = str(meta.get("space", "euclidean")) if meta else "euclidean"
    with MemoryEngine.open(root, embedder=spec, space=space, read_only=read_only) as engine:
        yield engine


def require_agent(engine: MemoryEngine, agent: str) -> None:
    """Fail with exit code 3 when ``agent`` has no memories in the store."""
    if agent not in engine.agents():
        raise NotFoundError(
            f"agent {agent!r} has no memories in {engine.path}; engramdb stats lists the agents"
        )


def json_object(value: str | None, flag: str) -> dict[str, Any] | None:
    """A ``--flag '{...}'`` value as a dict (ValidationError, exit code 2, if it is not one)."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{flag} {value!r} is not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise ValidationError(f"{flag} {value!r} must be a JSON object")
    return parsed


_AGO = re.compile(r"(\d+(?:\.\d+)?)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def when(value: str | None, flag: str) -> datetime | None:
    """``--since``/``--until``: an ISO date or time (local if no zone), or an age like ``7d``."""
    if value is None:
        return None
    ago = _AGO.fullmatch(value.strip())
    if ago:
        return datetime.now(UTC) - timedelta(**{_UNITS[ago[2]]: float(ago[1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{flag} {value!r} is neither an ISO date or time (2024-05-01, 2024-05-01T09:30) "
            "nor an age (30m, 12h, 7d, 2w)"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()
