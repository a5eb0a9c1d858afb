"""A short tour of engramdb on the default store: ``python -m engramdb.demo``.

Two agents ingest a multi-session conversation, recall from it, and a second
process reopens the store and recalls again, offline, on the bundled model.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from engramdb import MemoryEngine

console = Console()

AGENTS = ("demo-travel", "demo-coach")
SESSIONS = {
    "demo-travel": [
        [
            ("user", "I'm planning a trip to Japan in April for the cherry blossoms."),
            ("assistant", "Great timing! Kyoto and Tokyo both peak in early April."),
            ("user", "I'm vegetarian, so I'll need restaurant suggestions that work for me."),
        ],
        [
            ("user", "My passport expires in June, is that a problem?"),
            ("assistant", "Japan requires a passport valid for your whole stay, so you're fine."),
            ("user", "I'd rather take trains than domestic flights."),
        ],
    ],
    "demo-coach": [
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
FACTS = {
    "demo-travel": [
        ("The user is vegetarian.", "semantic"),
        ("Book rail passes before flights when the user travels.", "procedural"),
    ],
    "demo-coach": [("The user's goal race is a half marathon in October.", "semantic")],
}
QUESTIONS = {
    "demo-travel": ["What food does the user eat?", "How does the user like to get around?"],
    "demo-coach": ["Does the user have any injuries?", "What is the user training for?"],
}


def _ingest(engine: MemoryEngine) -> None:
    start = datetime.now(UTC) - timedelta(days=14)
    for agent in AGENTS:
        engine.delete_agent(agent)  # the demo starts clean every time
        items = []
        for s, turns in enumerate(SESSIONS[agent]):
            when = start + timedelta(days=7 * s)
            for t, (speaker, text) in enumerate(turns):
                items.append(
                    {
                        "text": f"{speaker}: {text}",
                        "session": f"session-{s + 1}",
                        "created_at": when + timedelta(minutes=t),
                        "metadata": {"speaker": speaker},
                    }
                )
        engine.add_many(items, agent=agent, kind="episodic")
        engine.add_many(
            [{"text": t, "kind": k, "importance": 0.8} for t, k in FACTS[agent]], agent=agent
        )
        engine.add("Draft reply in progress", agent=agent, kind="working", session="session-2")


def _show(engine: MemoryEngine, title: str) -> None:
    for agent in AGENTS:
        for question in QUESTIONS[agent]:
            table = Table(title=f"{title} · {agent} · {question}", title_justify="left")
            table.add_column("score", justify="right")
            table.add_column("kind")
            table.add_column("memory")
            for hit in engine.recall(question, agent=agent, k=3, record_access=False):
                table.add_row(f"{hit.score:.3f}", hit.memory.kind.value, hit.memory.text)
            console.print(table)


def reopen() -> None:
    """Second half: runs in a new process, on the store the first half wrote."""
    with MemoryEngine.open(read_only=True) as engine:
        counts = ", ".join(f"{a}: {engine.count(agent=a)}" for a in AGENTS)
        console.print(f"[bold]Reopened {engine.path} in process 2[/bold] ({counts})")
        _show(engine, "after reopen")


def main() -> None:
    if sys.argv[1:] == ["--reopen"]:
        reopen()
        return
    with MemoryEngine.open() as engine:
        console.print(
            f"[bold]engramdb demo[/bold] · store {engine.path} · model {engine.embedder.name}"
        )
        _ingest(engine)
        _show(engine, "recall")
    subprocess.run([sys.executable, "-m", "engramdb.demo", "--reopen"], check=True)


if __name__ == "__main__":
    main()
