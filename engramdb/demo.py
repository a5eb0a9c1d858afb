"""A short tour of engramdb: ``make demo``, or ``python -m engramdb.demo``.

Two agents remember a few weeks of conversation with one user: the turns as
episodic memories, and the facts and instructions an agent took from each
session as semantic and procedural ones. The tour then

1. asks each agent questions about the user (recall, on the bundled model);
2. consolidates: the facts noted again in each session are merged into one
   memory, which names the notes it stands for;
3. carries one agent to a second store through a snapshot file and asks it
   again there.

The demo keeps to its own store, ``demo`` beside the default store
(``$ENGRAMDB_HOME/demo``, else in the platform's user data directory), and
builds it afresh on every run, so it never grows.
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from engramdb import MemoryEngine

MARKER = ".engramdb-demo"
"""A file in the demo's store: only a directory holding it is ever deleted by the demo."""

AGENTS = ("travel", "coach")
SESSIONS: dict[str, list[list[tuple[str, str]]]] = {
    "travel": [
        [
            ("user", "I'm planning a trip to Japan in April for the cherry blossoms."),
            ("assistant", "Great timing! Kyoto and Tokyo both peak in early April."),
            ("user", "I'm vegetarian, so I'll need restaurants that work for me."),
        ],
        [
            ("user", "My passport expires in June; is that a problem?"),
            ("assistant", "Japan needs a passport valid for your whole stay, so you're fine."),
            ("user", "I'd rather take the train than fly between cities."),
        ],
        [
            ("user", "Can you find a ryokan in Kyoto with a vegetarian dinner?"),
            ("assistant", "Shunkoin temple lodging serves vegetarian shojin ryori."),
        ],
    ],
    "coach": [
        [
            ("user", "I want to run a half marathon in October."),
            ("assistant", "Let's build up to 35 km a week by the end of August."),
            ("user", "My left knee hurts after long downhill runs."),
        ],
        [
            ("user", "I did my first 15 km long run on Sunday!"),
            ("assistant", "Excellent. Add strength work for the knee twice a week."),
        ],
    ],
}
NOTES: dict[str, list[list[tuple[str, str]]]] = {
    # What the agent wrote down after each session; some facts come up again.
    "travel": [
        [
            ("The user is vegetarian.", "semantic"),
            ("The user is going to Japan in April.", "semantic"),
        ],
        [
            ("The user prefers trains to planes.", "semantic"),
            ("Suggest rail passes before flights.", "procedural"),
        ],
        [
            ("The user is vegetarian.", "semantic"),
            ("The user prefers trains to planes.", "semantic"),
        ],
    ],
    "coach": [
        [
            ("The user is training for a half marathon in October.", "semantic"),
            ("The user's left knee hurts on long downhill runs.", "semantic"),
        ],
        [("The user's left knee hurts on long downhill runs.", "semantic")],
    ],
}
QUESTIONS = {
    "travel": ["What does the user eat?", "Does the user prefer trains or planes?"],
    "coach": ["Is the user injured?", "What race is the user training for?"],
}


def demo_store() -> Path:
    """The demo's own store: ``demo`` beside the default store."""
    from engramdb.config import default_store_path

    return default_store_path().parent / "demo"


def fresh(path: Path) -> Path:
    """An empty directory at ``path``, removing the demo's previous run (and nothing else)."""
    if path.exists():
        if not (path / MARKER).exists() and any(path.iterdir()):
            sys.exit(f"{path} is not the demo's store (no {MARKER} in it); move it away first")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("Made by python -m engramdb.demo, which rebuilds it each run.\n")
    return path


def ingest(engine: MemoryEngine) -> int:
    """Write each agent's sessions and notes, a week apart, the last one this morning."""
    written = 0
    for agent in AGENTS:
        sessions = SESSIONS[agent]
        # The last session ends before now: times in the future are refused.
        start = datetime.now(UTC) - timedelta(days=7 * (len(sessions) - 1), hours=1)
        for s, (turns, notes) in enumerate(zip(sessions, NOTES[agent], strict=True)):
            when = start + timedelta(days=7 * s)
            session = f"session-{s + 1}"
            items = [
                {"text": f"{speaker}: {text}", "created_at": when + timedelta(minutes=t),
                 "metadata": {"speaker": speaker}}
                for t, (speaker, text) in enumerate(turns)
            ] + [
                {"text": text, "kind": kind, "importance": 0.8,
                 "created_at": when + timedelta(minutes=30)}
                for text, kind in notes
            ]  # fmt: skip
            engine.add_many(items, agent=agent, kind="episodic", session=session)
            written += len(items)
    return written


def ask(console: Console, engine: MemoryEngine, agents: tuple[str, ...], title: str) -> None:
    from rich.table import Table

    for agent in agents:
        for question in QUESTIONS[agent]:
            table = Table(title=f"{agent}: {question}", title_justify="left", box=None)
            table.add_column("score", justify="right", no_wrap=True)
            table.add_column("kind", no_wrap=True)
            table.add_column(title, overflow="fold")
            for hit in engine.recall(question, agent=agent, k=3, record_access=False):
                covers = f"  [dim](stands for {len(hit.covers)})[/dim]" if hit.covers else ""
                table.add_row(f"{hit.score:.3f}", hit.memory.kind.value, hit.memory.text + covers)
            console.print(table)
            console.print()


def main() -> None:
    # Say something before the imports: the engine and the model take a few seconds.
    print("engramdb demo: loading the engine and the bundled model ...", flush=True)
    from rich.console import Console

    from engramdb import MemoryEngine

    console = Console()
    root = fresh(demo_store())
    with MemoryEngine.open(root / "store") as engine:
        n = ingest(engine)
        counts = ", ".join(f"{a} {engine.count(agent=a)}" for a in AGENTS)
        console.print(f"[bold]1. Recall[/bold] · {n} memories in {engine.path} ({counts})\n")
        ask(console, engine, AGENTS, "memory")

        report = engine.consolidate()
        console.print("[bold]2. Consolidation[/bold] · duplicates merged, sources archived")
        for r in report:
            console.print(
                f"  {r.agent}: {r.active_before} -> {r.active_after} active memories, "
                f"{r.groups_merged} merged from {r.duplicates_archived} duplicates"
            )
        console.print("  (archived memories stay: get() finds them, so does include_archived)\n")
        ask(console, engine, AGENTS[:1], "memory, after consolidation")

        snapshot = root / "travel.engram"
        info = engine.export_snapshot(snapshot, agent="travel", vectors="int8")
    console.print(
        f"[bold]3. Snapshot[/bold] · {info.memories} memories of {info.agent!r} in "
        f"{info.path.name} ({info.bytes / 1000:.1f} kB, int8 vectors, sha256 {info.sha256[:16]}...)"
    )
    with MemoryEngine.open(root / "elsewhere") as other:
        other.import_snapshot(snapshot, agent="travel")
        console.print(f"  imported into a second store, {other.path}\n")
        ask(console, other, AGENTS[:1], "memory, in the second store")
    console.print(f"Done. The demo's store is {root}; the next run rebuilds it.")


if __name__ == "__main__":
    main()
