"""The one LoCoMo reader of the benchmarks (``locomo.py``, ``compression.py``, ``latency.py``,
``ingest.py``) and LoCoMo's evidence recall.

LoCoMo (CC BY-NC 4.0, not shipped) is a list of conversations. Each holds
``conversation`` with ``session_N`` turn lists and their ``session_N_date_time``,
a ``qa`` list whose ``evidence`` names turns by ``dia_id`` (``D<session>:<turn>``),
and, in some files, per-session ``observation`` facts with evidence of their own.
:func:`read_locomo` reads all of it into :class:`Conversation` values; what a
benchmark makes of them (memory texts, dates, a duplicate-heavy log) stays with it.

Example:
    >>> parse_date("1:56 pm on 8 May, 2023").isoformat()
    '2023-05-08T13:56:00+00:00'
    >>> Turn("D1:1", "Ana", "Hi!", "a cat").render()
    'Ana said, "Hi!" [shares a cat]'
    >>> evidence_ids(["D1:2; D2:1", "D:1:3", "D1:2"])
    ('D1:2', 'D2:1')
    >>> evidence_turns("D2:1 D1:2")
    ['D1:2', 'D2:1']
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
"""LoCoMo's question categories by their number in ``qa[i]['category']``."""

EVIDENCE_ID = re.compile(r"D(\d+):(\d+)")
"""A turn id, ``D<session>:<turn>``; groups are the session and turn numbers."""

DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%d %B, %Y")
"""Session date formats, tried in order; the first is the one LoCoMo uses."""


def parse_date(text: str) -> datetime:
    """A session date such as ``'1:56 pm on 8 May, 2023'`` as a UTC datetime.

    Raises:
        ValueError: if ``text`` matches none of ``DATE_FORMATS``.
    """
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"LoCoMo session date {text!r} matches none of {DATE_FORMATS}")


def evidence_ids(raw: Sequence[object]) -> tuple[str, ...]:
    """Well-formed turn ids in evidence strings, once each, in order of appearance.

    Some evidence strings are malformed (``'D:1:3'``) or hold several ids
    (``'D1:2; D2:1'``); only well-formed ids count.
    """
    found = [m.group(0) for item in raw for m in EVIDENCE_ID.finditer(str(item))]
    return tuple(dict.fromkeys(found))


def evidence_turns(raw: object) -> list[str]:
    """Turn ids anywhere in an evidence value of any shape, once each, sorted as strings.

    Observations give their evidence as a bare string, a list, or nested lists;
    the value is read as its JSON text.
    """
    return sorted(evidence_ids([json.dumps(raw)]))


def session_of(dia_id: str) -> int:
    """The session number of a turn id: 3 for ``'D3:14'``.

    Raises:
        ValueError: if ``dia_id`` is not of the form ``D<session>:<turn>``.
    """
    m = EVIDENCE_ID.fullmatch(dia_id)
    if m is None:
        raise ValueError(f"dia_id {dia_id!r} is not of the form D<session>:<turn>")
    return int(m.group(1))


def evidence_recall(found: Iterable[Hashable], evidence: Sequence[Hashable]) -> float:
    """LoCoMo's evidence recall: the share of ``evidence`` (turn ids, or sessions) in ``found``.

    A question without evidence (adversarial ones) counts as fully recalled.
    """
    if not evidence:
        return 1.0
    seen = set(found)
    return sum(e in seen for e in evidence) / len(evidence)


# -- the reader --------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One turn of a session, as the file has it."""

    dia_id: str
    speaker: str
    text: str
    caption: str | None = None
    """``blip_caption`` of the image the turn shared, if any."""

    @property
    def session(self) -> int:
        """The session number in the turn's ``dia_id``."""
        return session_of(self.dia_id)

    def render(self, text: str | None = None, *, caption_label: str = "shares") -> str:
        """The turn as a memory text: ``{speaker} said, "{text}"`` and its image's caption.

        A turn that shared an image gains `` [{caption_label} {caption}]``.

        Args:
            text: Said instead of the turn's own text (a reworded copy, say).
            caption_label: The word before the caption. The benchmarks differ here
                (``locomo.py``: ``shares``, ``compression.py``: ``shares:``), and their
                cached embeddings and figures are of those exact texts.
        """
        out = f'{self.speaker} said, "{self.text if text is None else text}"'
        return f"{out} [{caption_label} {self.caption}]" if self.caption else out


@dataclass(frozen=True)
class Observation:
    """A fact LoCoMo's authors drew from a session about one speaker."""

    speaker: str
    text: str
    evidence: tuple[str, ...]
    """Turn ids, sorted as strings (:func:`evidence_turns`)."""


@dataclass(frozen=True)
class Session:
    number: int
    date: datetime
    turns: tuple[Turn, ...]
    observations: tuple[Observation, ...] = ()
    """In file order: by speaker as the file lists them, then each speaker's facts."""


@dataclass(frozen=True)
class Question:
    question: str
    category: int | None
    evidence: tuple[str, ...]
    """Turn ids in order of appearance (:func:`evidence_ids`)."""


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]

    @property
    def turns(self) -> tuple[Turn, ...]:
        """Every turn, session by session."""
        return tuple(t for s in self.sessions for t in s.turns)


_SESSION_KEY = re.compile(r"session_(\d+)")


def read_conversation(raw: dict[str, Any], index: int = 0) -> Conversation:
    """One conversation of a LoCoMo file; sessions in numeric order, gaps allowed."""
    c = raw["conversation"]
    observed = raw.get("observation", {})
    numbers = sorted(int(m.group(1)) for key in c if (m := _SESSION_KEY.fullmatch(key)))
    sessions = []
    for n in numbers:
        turns = tuple(
            Turn(t["dia_id"], t["speaker"], t["text"], t.get("blip_caption") or None)
            for t in c[f"session_{n}"]
        )
        facts = observed.get(f"session_{n}_observation", {})
        observations = tuple(
            Observation(speaker, text, tuple(evidence_turns(evidence)))
            for speaker, items in facts.items()
            for text, evidence in items
        )
        sessions.append(Session(n, parse_date(c[f"session_{n}_date_time"]), turns, observations))
    questions = tuple(
        Question(
            q["question"],
            None if q.get("category") is None else int(q["category"]),
            evidence_ids([json.dumps(q.get("evidence", []))]),
        )
        for q in raw.get("qa", [])
    )
    return Conversation(str(raw.get("sample_id", f"conv-{index}")), tuple(sessions), questions)


def read_locomo(path: Path, *, limit: int | None = None) -> list[Conversation]:
    """The first ``limit`` conversations (all if None or 0) of a LoCoMo file."""
    data = json.loads(Path(path).read_text())
    return [read_conversation(raw, i) for i, raw in enumerate(data[: limit or None])]
