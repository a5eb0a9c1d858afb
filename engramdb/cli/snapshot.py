"""CLI commands for snapshots and checkpoints: ``export``, ``import``, ``snapshot-info``,
``checkpoint``, ``rollback``, ``checkpoints`` and ``checkpoint-delete``.

They mirror the Python API (:mod:`engramdb.snapshots.io`,
:mod:`engramdb.engine.checkpoints`). Keys come from ``--key-file`` (32 raw bytes,
or 64 hex characters: ``head -c 32 /dev/urandom > bot.key``) or a passphrase typed
at a hidden prompt (``--passphrase``); importing a passphrase-sealed file prompts
without being asked.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal, get_args

import typer

from engramdb.cli.common import (
    AgentOption,
    EmbedderOption,
    JsonOption,
    StorageOptionsOption,
    StoreOption,
    app,
    open_engine,
    require_agent,
)
from engramdb.cli.output import Column, print_fields, print_json, print_table
from engramdb.errors import NotFoundError, ValidationError

__all__ = ["MODES", "VECTORS", "read_key_file"]

Vectors = Literal["float32", "float16", "int8"]
"""Vector encodings of a snapshot (as :data:`engramdb.snapshots.codecs.VECTOR_CODECS`)."""
Mode = Literal["fail", "replace", "merge"]
"""Import modes (as :data:`engramdb.snapshots.io.MODES`)."""
VECTORS: tuple[str, ...] = get_args(Vectors)
MODES: tuple[str, ...] = get_args(Mode)

KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file", metavar="FILE", help="File with a 32-byte key (raw, or 64 hex characters)."
    ),
]
Passphrase = Annotated[
    bool, typer.Option("--passphrase", help="Prompt for a passphrase (input hidden).")
]
CheckpointName = Annotated[str, typer.Argument(metavar="NAME", help="Checkpoint name.")]


def read_key_file(path: Path) -> bytes:
    """A 32-byte key from a file of 32 raw bytes or 64 hex characters."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(raw) == 32:
        return raw
    text = raw.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise ValidationError(
        f"key file {path} holds {len(raw)} bytes; it must hold 32 raw bytes or 64 hex "
        "characters (make one with: head -c 32 /dev/urandom > KEYFILE)"
    )


def _key(key_file: Path | None, passphrase: bool, *, confirm: bool) -> bytes | str | None:
    if key_file is not None and passphrase:
        raise ValidationError("give --key-file or --passphrase, not both")
    if key_file is not None:
        return read_key_file(key_file)
    if passphrase:
        return _prompt(confirm=confirm)
    return None


def _prompt(*, confirm: bool) -> str:
    value: str = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    return value


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@app.command("export")
def export_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Snapshot file to write.")],
    agent: AgentOption,
    vectors: Annotated[
        Vectors,
        typer.Option(
            "--vectors",
            help="float32 is exact, float16 half the size, int8 the smallest.",
        ),
    ] = "float32",
    no_archived: Annotated[
        bool, typer.Option("--no-archived", help="Leave out archived memories.")
    ] = False,
    key_file: KeyFile = None,
    passphrase: Passphrase = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite PATH.")] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Write AGENT's whole memory to one verifiable (optionally encrypted) file."""
    from engramdb.snapshots.io import export_snapshot

    if path.exists() and not force:
        raise ValidationError(f"{path} exists; pass --force to overwrite it")
    key = _key(key_file, passphrase, confirm=True)
    with open_engine(store, embedder, read_only=True, options=storage_option) as engine:
        require_agent(engine, agent)
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
        print_json({k: v for k, v in asdict(info).items() if k != "manifest"})
        return
    sealed = ", encrypted" if info.encrypted else ""
    typer.echo(
        f"exported {info.memories} memories of {info.agent!r} to {info.path} "
        f"({_size(info.bytes)}, {info.vectors}{sealed})\nsha256 {info.sha256}"
    )


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Snapshot file to read.")],
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent", "-a", metavar="NAME", help="Import as this agent (a copy with new ids)."
        ),
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            "-m",
            help="If the agent has memories: fail, replace them, or merge.",
        ),
    ] = "fail",
    reembed: Annotated[
        bool, typer.Option("--reembed", help="Embed the texts again with this store's embedder.")
    ] = False,
    key_file: KeyFile = None,
    passphrase: Passphrase = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Restore an agent (or a copy under another name) from a snapshot file."""
    from engramdb.snapshots.io import import_snapshot, read_snapshot_manifest

    key = _key(key_file, passphrase, confirm=False)
    if key is None:
        manifest = read_snapshot_manifest(path)
        if manifest.encryption is not None and manifest.encryption.kdf == "scrypt":
            key = _prompt(confirm=False)
    with open_engine(store, embedder, create=True, options=storage_option) as engine:
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
        print_json(asdict(report))
        return
    copy = f" (a copy of {report.source_agent!r})" if report.copied else ""
    typer.echo(
        f"imported into {report.agent!r}{copy}: {report.added} added, {report.updated} "
        f"updated, {report.unchanged} unchanged, {report.removed} removed"
    )


@app.command("snapshot-info")
def snapshot_info_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Snapshot file.")],
    verify: Annotated[
        bool, typer.Option("--verify", help="Check every part's hash (and rows, if readable).")
    ] = False,
    key_file: KeyFile = None,
    passphrase: Passphrase = False,
    as_json: JsonOption = False,
) -> None:
    """Print what a snapshot holds (needs no key; an encrypted one shows only its envelope)."""
    from engramdb.snapshots.io import read_snapshot_manifest, verify_snapshot
    from engramdb.snapshots.manifest import manifest_json

    key = _key(key_file, passphrase, confirm=False)
    manifest = (verify_snapshot if verify else read_snapshot_manifest)(path, key=key)
    if as_json:
        print_json({**manifest_json(manifest), "verified": verify})
        return
    enc = manifest.encryption
    if enc is None:
        sealing = "none"
    else:
        sealing = f"{enc.scheme}, " + ("passphrase (scrypt)" if enc.kdf == "scrypt" else "key file")
    fields = [
        ("file", f"{path} ({_size(manifest.bytes)})"),
        ("format", str(manifest.format)),
        ("sha256", manifest.sha256),
        ("encryption", sealing),
    ]
    if manifest.sealed:
        fields.append(("content", "sealed: pass --passphrase or --key-file to see it"))
    else:
        content = manifest.content
        fields += [
            ("agent", content.agent),
            ("created", str(manifest.created_at)),
            ("engine", f"engramdb {manifest.engine_version}"),
            ("embedder", f"{content.embedder.name} (dim {content.embedder.dim})"),
            ("space", str(manifest.space)),
            ("vectors", content.vectors.encoding),
            ("memories", str(content.counts.total)),
            *((f"  {kind}", str(n)) for kind, n in content.counts.kinds.items()),
            *((f"  {status}", str(n)) for status, n in content.counts.statuses.items()),
            *(
                (f"part {p.name}", f"{p.rows} rows, {_size(p.bytes)}, {p.codec}")
                for p in manifest.parts
            ),
        ]
    fields.append(("verified", "every hash" if verify else "header and manifest"))
    print_fields(fields)


@app.command("checkpoint")
def checkpoint_cmd(
    name: CheckpointName,
    agent: AgentOption,
    as_json: JsonOption = False,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Name the current state of AGENT's memory, to roll back to later."""
    with open_engine(store, embedder, options=storage_option) as engine:
        cp = engine.checkpoint(agent=agent, name=name)
    if as_json:
        print_json(asdict(cp))
        return
    typer.echo(f"checkpoint {cp.name!r} of {cp.agent!r}: {cp.memories} memories")


@app.command("rollback")
def rollback_cmd(
    name: CheckpointName,
    agent: AgentOption,
    as_json: JsonOption = False,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Restore AGENT's memory to a checkpoint (other agents untouched)."""
    with open_engine(store, embedder, options=storage_option) as engine:
        report = engine.rollback(agent=agent, name=name)
    if as_json:
        print_json(asdict(report))
        return
    typer.echo(
        f"rolled {agent!r} back to {name!r}: {report.memories} memories "
        f"({report.removed} fewer than before)"
    )


@app.command("checkpoints")
def checkpoints_cmd(
    agent: AgentOption,
    as_json: JsonOption = False,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """List AGENT's checkpoints, oldest first."""
    with open_engine(store, embedder, read_only=True, options=storage_option) as engine:
        found = engine.checkpoints(agent=agent)
        if not found and agent not in engine.agents():
            raise NotFoundError(
                f"agent {agent!r} has no memories and no checkpoints in {engine.path}; "
                "engramdb stats lists the agents"
            )
    if as_json:
        print_json([{k: v for k, v in asdict(c).items() if k != "agent"} for c in found])
        return
    print_table(
        [
            Column("name"),
            Column("created"),
            Column("memories", numeric=True),
            Column("version", numeric=True),
        ],
        (
            [c.name, f"{c.created_at:%Y-%m-%d %H:%M:%S}" if c.created_at else "?",
             str(c.memories), str(c.version)]
            for c in found
        ),
    )  # fmt: skip


@app.command("checkpoint-delete")
def checkpoint_delete_cmd(
    name: CheckpointName,
    agent: AgentOption,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Delete a checkpoint (its disk space is freed at a later compaction)."""
    from engramdb.engine.checkpoints import delete_checkpoint

    with open_engine(store, embedder, options=storage_option) as engine:
        delete_checkpoint(engine, agent=agent, name=name)
    typer.echo(f"deleted checkpoint {name!r} of {agent!r}")
