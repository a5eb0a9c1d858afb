"""The memory commands: ``add``, ``recall`` and ``stats``."""

from __future__ import annotations

from typing import Annotated

import typer

from engramdb.cli.common import (
    KIND_METAVAR,
    AgentOption,
    EmbedderOption,
    JsonOption,
    Kind,
    StorageOptionsOption,
    StoreOption,
    app,
    json_object,
    open_engine,
    require_agent,
    when,
)
from engramdb.cli.output import Column, print_json, print_table

__all__ = ["add", "recall", "stats"]


@app.command()
def add(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The memory.", show_default=False)],
    agent: AgentOption,
    kind: Annotated[
        Kind, typer.Option("--kind", metavar=KIND_METAVAR, help="What sort of memory it is.")
    ] = Kind.EPISODIC,
    session: Annotated[
        str | None, typer.Option("--session", metavar="NAME", help="The session it belongs to.")
    ] = None,
    metadata: Annotated[
        str | None, typer.Option("--metadata", metavar="JSON", help="A JSON object.")
    ] = None,
    importance: Annotated[
        float | None,
        typer.Option("--importance", min=0.0, max=1.0, help="0 to 1; 1 pins it [default: 0.5]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the memory as JSON.")] = False,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Store one memory and print its id."""
    meta = json_object(metadata, "--metadata")
    with open_engine(store, embedder, create=True, options=storage_option) as engine:
        memory = engine.add(
            text,
            agent=agent,
            kind=kind.value,
            session=session,
            metadata=meta,
            importance=importance,
        )
    if as_json:
        print_json(memory.model_dump(mode="json"))
    else:
        typer.echo(memory.id)


@app.command()
def recall(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for.")],
    agent: AgentOption,
    k: Annotated[int, typer.Option("-k", min=1, metavar="N", help="How many memories.")] = 5,
    kinds: Annotated[
        list[Kind] | None,
        typer.Option("--kind", metavar=KIND_METAVAR, help="Only this kind (repeat for several)."),
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", metavar="NAME", help="Only this session.")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            metavar="JSON",
            help='Metadata filter, e.g. \'{"topic": "pets"}\' or \'{"n": {"$gte": 2}}\'.',
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="Only memories from then on: 2024-05-01, 7d."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="WHEN", help="Only memories until then.")
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Print the memories most relevant to QUERY, best first."""
    criteria = json_object(where, "--where")
    start, end = when(since, "--since"), when(until, "--until")
    with open_engine(store, embedder, read_only=True, options=storage_option) as engine:
        require_agent(engine, agent)
        hits = engine.recall(
            query,
            agent=agent,
            k=k,
            kinds=[kind.value for kind in kinds] if kinds else None,
            session=session,
            where=criteria,
            since=start,
            until=end,
            record_access=False,
        )
    if as_json:
        print_json(
            [
                {"score": h.score, "similarity": h.similarity, **h.memory.model_dump(mode="json")}
                for h in hits
            ]
        )
        return
    print_table(
        [Column("score", numeric=True), Column("kind"), Column("memory"), Column("id")],
        ([f"{h.score:.3f}", h.memory.kind.value, h.memory.text, h.memory.id] for h in hits),
    )


@app.command()
def stats(
    as_json: JsonOption = False,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
) -> None:
    """Print the store's embedder and each agent's memory count."""
    with open_engine(store, None, read_only=True, options=storage_option) as engine:
        counts = {
            name: (engine.count(agent=name, include_archived=False), engine.count(agent=name))
            for name in engine.agents()
        }
        about = {"store": str(engine.path), "embedder": engine.embedder.name}
    if as_json:
        print_json(
            {
                **about,
                "agents": {a: {"active": n, "total": t} for a, (n, t) in counts.items()},
            }
        )
        return
    print_table(
        [Column("agent"), Column("active", numeric=True), Column("archived", numeric=True)],
        ([a, str(n), str(t - n)] for a, (n, t) in counts.items()),
        title=f"{about['store']} ({about['embedder']})",
    )
