"""The brief: what an agent should know at the start of a session, within a token budget.

A brief has four sections, always in this order, each memory at most once:

1. **Working memory** of the session (newest first), when a session is given.
2. **Instructions**: the most important procedural memories.
3. **Knowledge**: the semantic memories most relevant to ``query``; without a
   query, the most important and most used ones.
4. **Recent episodes**: the latest episodic memories, newest first.

Each section first fills up to its share of the budget (:data:`SHARES`); what a
section leaves unused is then offered to the sections in order. Tokens are
counted with the embedder's tokenizer when it has one (the bundled MiniLM
does), else estimated from words (:func:`estimate_tokens`). Recalls are made
with ``record_access=False`` and lists are sorted by stored values with the id
as the last key, so a brief is a function of the store's state alone.

Example:
    >>> brief = build_brief(engine, agent="bot", query="window seats")
    >>> brief.memories[0].text
    'The user prefers window seats'
    >>> brief.tokens <= 1500
    True
"""

from __future__ import annotations

import builtins
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engramdb.embeddings import Embedder
from engramdb.errors import ValidationError
from engramdb.records import Hit, Memory, MemoryKind


class BriefSource(Protocol):
    """What a brief reads from an engine (:class:`~engramdb.MemoryEngine` is one)."""

    @property
    def embedder(self) -> Embedder: ...

    @property
    def mutex(self) -> threading.RLock: ...

    def list(
        self,
        *,
        agent: str,
        kind: MemoryKind | str | None = None,
        session: str | None = None,
        limit: int | None = 100,
    ) -> list[Memory]: ...

    def recall(
        self,
        query: str,
        *,
        agent: str,
        k: int = 10,
        kinds: Sequence[MemoryKind | str] | None = None,
        record_access: bool = True,
    ) -> builtins.list[Hit]: ...


__all__ = [
    "DEFAULT_BUDGET_TOKENS",
    "MAX_BUDGET_TOKENS",
    "SECTIONS",
    "SHARES",
    "Brief",
    "build_brief",
    "estimate_tokens",
    "token_counter",
]

DEFAULT_BUDGET_TOKENS = 1500
MAX_BUDGET_TOKENS = 100_000
SECTIONS = ("working", "instructions", "knowledge", "episodes")
"""Section keys, in the order they appear in a brief."""
SHARES = {"working": 0.25, "instructions": 0.25, "knowledge": 0.3, "episodes": 0.2}
"""Each section's first claim on the budget; unused tokens go to the others in order."""
_TITLES = {
    "working": "Working memory",
    "instructions": "Instructions",
    "knowledge": "Knowledge",
    "episodes": "Recent episodes",
}
_CANDIDATES = 200
"""Memories considered per section; a brief of a few thousand tokens never needs more."""
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Brief:
    """A brief: its text, the memories it holds (in text order) and its size.

    Attributes:
        text: Markdown, one ``## `` heading per non-empty section, one memory a line.
        memories: The memories in the text, in order.
        tokens: Tokens of ``text`` (by the embedder's tokenizer, or estimated).
        budget_tokens: The budget it was built for.
        sections: Section key to the ids of its memories, in order.
    """

    text: str
    memories: tuple[Memory, ...]
    tokens: int
    budget_tokens: int
    sections: dict[str, tuple[str, ...]] = field(default_factory=dict)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: words and punctuation marks, times 4/3 (subword splits)."""
    return math.ceil(len(_WORD.findall(text)) * 4 / 3)


def token_counter(embedder: Any) -> Callable[[str], int]:
    """Count tokens with the embedder's tokenizer if it has one, else :func:`estimate_tokens`.

    A sentence-transformers embedder exposes its model (``embedder.model``), whose
    ``tokenizer`` is a Hugging Face tokenizer; other embedders have none.
    """
    model = getattr(embedder, "model", None)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not callable(tokenizer):
        return estimate_tokens

    def count(text: str) -> int:
        encoded = tokenizer(text, add_special_tokens=False, truncation=False)
        return len(encoded["input_ids"])

    return count


def _line(memory: Memory, section: str) -> str:
    text = " ".join(memory.text.split())  # one memory, one line
    if section == "episodes":
        return f"- [{memory.created_at:%Y-%m-%d %H:%M}] {text}"
    return f"- {text}"


def _newest_first(memories: Sequence[Memory]) -> list[Memory]:
    return sorted(memories, key=lambda m: (m.created_at, m.id), reverse=True)


def _by_weight(memories: Sequence[Memory]) -> list[Memory]:
    # Most important, then most used, then newest; the id settles the rest.
    return sorted(
        memories,
        key=lambda m: (-m.importance, -m.access_count, -m.created_at.timestamp(), m.id),
    )


def _candidates(
    engine: BriefSource, agent: str, session: str | None, query: str | None
) -> dict[str, list[Memory]]:
    listed = {
        kind: engine.list(agent=agent, kind=kind, limit=None)
        for kind in (MemoryKind.PROCEDURAL, MemoryKind.EPISODIC)
    }
    working: list[Memory] = []
    if session is not None:
        working = _newest_first(engine.list(agent=agent, kind=MemoryKind.WORKING, session=session))
    if query is not None:
        hits = engine.recall(
            query,
            agent=agent,
            k=_CANDIDATES,
            kinds=[MemoryKind.SEMANTIC],
            record_access=False,
        )
        knowledge = [h.memory for h in hits]
    else:
        knowledge = _by_weight(engine.list(agent=agent, kind=MemoryKind.SEMANTIC, limit=None))
    return {
        "working": working[:_CANDIDATES],
        "instructions": _by_weight(listed[MemoryKind.PROCEDURAL])[:_CANDIDATES],
        "knowledge": knowledge[:_CANDIDATES],
        "episodes": _newest_first(listed[MemoryKind.EPISODIC])[:_CANDIDATES],
    }


def build_brief(
    engine: BriefSource,
    *,
    agent: str,
    session: str | None = None,
    query: str | None = None,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
) -> Brief:
    """What ``agent`` should know at the start of a session, in at most ``budget_tokens``.

    Args:
        engine: An open engine.
        agent: Whose memory.
        session: The session starting; its working memory leads the brief.
        query: What the session is about; picks the knowledge section by relevance.
        budget_tokens: Upper bound on the brief's tokens (1 to 100,000).

    Returns:
        A :class:`Brief`; an agent with no memories gets an empty one.

    Raises:
        ValidationError: a bad agent or session name, budget or query.
    """
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int):
        raise ValidationError(f"budget_tokens {budget_tokens!r} must be an int")
    if not 1 <= budget_tokens <= MAX_BUDGET_TOKENS:
        raise ValidationError(
            f"budget_tokens {budget_tokens} is outside 1 to {MAX_BUDGET_TOKENS}; pass a budget "
            "in that range"
        )
    if query is not None and not query.strip():
        raise ValidationError("query '' is empty; pass some text, or no query")
    count = token_counter(engine.embedder)
    with engine.mutex:  # one consistent state for all four sections
        candidates = _candidates(engine, agent, session, query)
    chosen: dict[str, list[tuple[Memory, str, int]]] = {s: [] for s in SECTIONS}
    used: dict[str, int] = dict.fromkeys(SECTIONS, 0)
    seen: set[str] = set()
    headers = {s: count(f"## {_TITLES[s]}") for s in SECTIONS}

    def fill(section: str, allowance: int) -> None:
        for memory in candidates[section]:
            if memory.id in seen:
                continue
            line = _line(memory, section)
            cost = count(line) + (0 if chosen[section] else headers[section])
            if used[section] + cost > allowance:
                continue  # a shorter memory further down may still fit
            chosen[section].append((memory, line, cost))
            used[section] += cost
            seen.add(memory.id)

    for section in SECTIONS:
        fill(section, math.floor(budget_tokens * SHARES[section]))
    for section in SECTIONS:
        spare = budget_tokens - sum(used.values())
        if spare <= 0:
            break
        fill(section, used[section] + spare)

    blocks = []
    for section in SECTIONS:
        if chosen[section]:
            lines = [f"## {_TITLES[section]}"] + [line for _, line, _ in chosen[section]]
            blocks.append("\n".join(lines))
    text = "\n\n".join(blocks)
    return Brief(
        text=text,
        memories=tuple(m for s in SECTIONS for m, _, _ in chosen[s]),
        tokens=count(text) if text else 0,
        budget_tokens=budget_tokens,
        sections={s: tuple(m.id for m, _, _ in chosen[s]) for s in SECTIONS},
    )
