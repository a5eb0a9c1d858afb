"""CLI commands for snapshots and checkpoints: ``export``, ``import``, ``snapshot-info``,
``checkpoint``, ``rollback``, ``checkpoints`` and ``checkpoint-delete``.

They mirror the Python API (:mod:`engramdb.snapshots.io`,
:mod:`engramdb.engine.checkpoints`). Keys come from ``--key-file`` (32 raw bytes,
or 64 hex characters: ``head -c 32 /dev/urandom > bot.key``) or a passphrase typed
at a hidden prompt (``--passphrase``); importing a passphrase-sealed file prompts
without being asked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engramdb.cli.app import StoreOption, app, console, err_console, open_engine
from engramdb.cli.errors import exit_code
from engramdb.engine.checkpoints import (
    create_checkpoint,
    delete_checkpoint,
    list_checkpoints,
    rollback_checkpoint,
)
from engramdb.errors import EngramError
from engramdb.snapshots.format import manifest_json
from engramdb.snapshots.io import (
    MODES,
    export_snapshot,
    import_snapshot,
    read_snapshot_manifest,
    verify_snapshot,
)

__all__ = ["read_key_file"]

Embedder = Annotated[
    str, typer.Option("--embedder", "-e", help="'minilm', 'hashing' or a model name/path.")
]
Agent = Annotated[str, typer.Option("--agent", "-a", help="Whose memory.")]
KeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", help="File with a 32-byte key (raw, or 64 hex characters)."),
]
Passphrase = Annotated[
    bool, typer.Option("--passphrase", help="Prompt for a passphrase (input hidden).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(exc: EngramError) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(exit_code(exc))


def _usage(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def read_key_file(path: Path) -> bytes:
    """A 32-byte key from a file of 32 raw bytes or 64 hex characters."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _usage(f"cannot read key file {path}: {exc.strerror}") from None
    if len(raw) == 32:
        return raw
    text = raw.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise _usage(
        f"key file {path} holds {len(raw)} bytes; it must hold 32 raw bytes or 64 hex "
        "characters (make one with: head -c 32 /dev/urandom > KEYFILE)"
    )


def _key(key_file: Path | None, passphrase: bool, *, confirm: bool) -> bytes | str | None:
    if key_file is not None and passphrase:
        raise _usage("give --key-file or --passphrase, not both")
    if key_file is not None:
        return read_key_file(key_file)
    if passphrase:
        return _prompt(confirm=confirm)
    return None


def _prompt(*, confirm: bool) -> str:
    value: str = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    return value


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@app.command("export")
def export_cmd(
    path: Annotated[Path, typer.Argument(help="Snapshot file to write.")],
    agent: Agent,
    vectors: Annotated[
        str, typer.Option("--vectors", help="float32 (exact), float16 or int8 (smallest).")
    ] = "float32",
    no_archived: Annotated[
        bool, typer.Option("--no-archived", help="Leave out archived memories.")
    ] = False,
    key_file: KeyFile = None,
    passphrase: Passphrase = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite PATH.")] = False,
    as_json: AsJson = False,
    store: StoreOption = None,
    embedder: Embedder = "minilm",
) -> None:
    """Write AGENT's whole memory to one verifiable (optionally encrypted) file."""
    if path.exists() and not force:
        raise _usage(f"{path} exists; pass --force to overwrite it")
    key = _key(key_file, passphrase, confirm=True)
    with open_engine(store, embedder, read_only=True) as engine:
        info = export_snapshot(
            engine,
            path,
            agent=agent,
            key=key,
            vectors=vectors,
            include_archived=not no_archived,
            progress=sys.stderr.isatty(),
        )
    if as_json:
        _print_json(
            {
                "path": str(info.path),
                "agent": info.agent,
                "memories": info.memories,
                "bytes": info.bytes,
                "sha256": info.sha256,
                "vectors": info.vectors,
                "encrypted": info.encrypted,
            }
        )
        return
    sealed = ", encrypted" if info.encrypted else ""
    console.print(
        f"exported {info.memories} memories of {info.agent!r} to {info.path} "
        f"({_size(info.bytes)}, {info.vectors}{sealed})\nsha256 {info.sha256}"
    )


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="Snapshot file to read.")],
    agent: Annotated[
        str | None,
        typer.Option("--agent", "-a", help="Import as this agent (a copy with new ids)."),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", "-m", help="fail (if the agent has memories), replace, merge.")
    ] = "fail",
    reembed: Annotated[
        bool, typer.Option("--reembed", help="Embed the texts again with this store's embedder.")
    ] = False,
    key_file: KeyFile = None,
    passphrase: Passphrase = False,
    as_json: AsJson = False,
    store: StoreOption = None,
    embedder: Embedder = "minilm",
) -> None:
    """Restore an agent (or a copy under another name) from a snapshot file."""
    if mode not in MODES:
        raise _usage(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    key = _key(key_file, passphrase, confirm=False)
    if key is None:
        try:
            manifest = read_snapshot_manifest(path)
        except EngramError as exc:
            raise _fail(exc) from None
        if manifest.encryption is not None and manifest.encryption.kdf == "scrypt":
            key = _prompt(confirm=False)
    with open_engine(store, embedder) as engine:
        report = import_snapshot(
            engine,
            path,
            agent=agent,
            mode=mode,
            key=key,
            reembed=reembed,
            progress=sys.stderr.isatty(),
        )
    if as_json:
        _print_json({k: getattr(report, k) for k in report.__dataclass_fields__})
        return
    copy = f" (a copy of {report.source_agent!r})" if report.copied else ""
    console.print(
        f"imported into {report.agent!r}{copy}: {report.added} added, {report.updated} "
        f"updated, {report.unchanged} unchanged, {report.removed} removed"
    )


@app.command("snapshot-info")
def snapshot_info_cmd(
    path: Annotated[Path, typer.Argument(help="Snapshot file.")],
    verify: Annotated[
        bool, typer.Option("--verify", help="Check every part's hash (and rows, if readable).")
    ] = False,
    key_file: KeyFile = None,
    passphrase: Passphrase = False,
    as_json: AsJson = False,
) -> None:
    """Print what a snapshot holds (needs no key; an encrypted one shows only its envelope)."""
    key = _key(key_file, passphrase, confirm=False)
    try:
        manifest = (verify_snapshot if verify else read_snapshot_manifest)(path, key=key)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json({**manifest_json(manifest), "verified": verify})
        return
    table = Table("field", "value", show_header=False)
    table.add_row("file", f"{path} ({_size(manifest.bytes)})")
    table.add_row("format", str(manifest.format))
    table.add_row("sha256", manifest.sha256)
    enc = manifest.encryption
    table.add_row("encryption", "none" if enc is None else f"{enc.scheme}, key from {enc.kdf}")
    if manifest.sealed:
        table.add_row("content", "sealed: pass --passphrase or --key-file to see it")
    else:
        content = manifest.content
        table.add_row("agent", content.agent)
        table.add_row("created", str(manifest.created_at))
        table.add_row("engine", f"engramdb {manifest.engine_version}")
        table.add_row("embedder", f"{content.embedder.name} (dim {content.embedder.dim})")
        table.add_row("space", str(manifest.space))
        table.add_row("vectors", content.vectors.encoding)
        table.add_row("memories", str(content.counts.total))
        for kind, n in content.counts.kinds.items():
            table.add_row(f"  {kind}", str(n))
        for status, n in content.counts.statuses.items():
            table.add_row(f"  {status}", str(n))
        for part in manifest.parts:
            table.add_row(
                f"part {part.name}", f"{part.rows} rows, {_size(part.bytes)}, {part.codec}"
            )
    table.add_row("verified", "every hash" if verify else "header and manifest")
    console.print(table)


@app.command("checkpoint")
def checkpoint_cmd(
    name: Annotated[str, typer.Argument(help="Checkpoint name.")],
    agent: Agent,
    store: StoreOption = None,
    embedder: Embedder = "minilm",
) -> None:
    """Name the current state of AGENT's memory, to roll back to later."""
    with open_engine(store, embedder) as engine:
        cp = create_checkpoint(engine, agent=agent, name=name)
    console.print(f"checkpoint {cp.name!r} of {cp.agent!r}: {cp.memories} memories")


@app.command("rollback")
def rollback_cmd(
    name: Annotated[str, typer.Argument(help="Checkpoint name.")],
    agent: Agent,
    store: StoreOption = None,
    embedder: Embedder = "minilm",
) -> None:
    """Restore AGENT's memory to a checkpoint (other agents untouched)."""
    with open_engine(store, embedder) as engine:
        report = rollback_checkpoint(engine, agent=agent, name=name)
    console.print(
        f"rolled {agent!r} back to {name!r}: {report.memories} memories "
        f"({report.removed} fewer than before)"
    )


@app.command("checkpoints")
def checkpoints_cmd(
    agent: Agent,
    as_json: AsJson = False,
    store: StoreOption = None,
    embedder: Embedder = "minilm",
) -> None:
    """List AGENT's checkpoints, oldest first."""
    with open_engine(store, embedder, read_only=True) as engine:
        found = list_checkpoints(engine, agent=agent)
    if as_json:
        _print_json(
            [
                {
                    "name": c.name,
                    "version": c.version,
                    "created_at": c.created_at,
                    "memories": c.memories,
                }
                for c in found
            ]
        )
        return
    table = Table("name", "created", "memories", "version")
    for c in found:
        table.add_row(c.name, str(c.created_at), str(c.memories), str(c.version))
    console.print(table)


@app.command("checkpoint-delete")
def checkpoint_delete_cmd(
    name: Annotated[str, typer.Argument(help="Checkpoint name.")],
    agent: Agent,
    store: StoreOption = None,
    embedder: Embedder = "minilm",
) -> None:
    """Delete a checkpoint (its disk space is freed at a later compaction)."""
    with open_engine(store, embedder) as engine:
        delete_checkpoint(engine, agent=agent, name=name)
    console.print(f"deleted checkpoint {name!r} of {agent!r}")
