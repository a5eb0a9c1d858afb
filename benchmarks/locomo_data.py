"""Reading LoCoMo files: what ``locomo.py`` and ``compression.py`` both need.

LoCoMo (CC BY-NC 4.0, not shipped) is a list of conversations. Each holds
``conversation`` with ``session_N`` turn lists and their ``session_N_date_time``,
a ``qa`` list whose ``evidence`` names turns by ``dia_id`` (``D<session>:<turn>``),
and, in some files, per-session ``observation`` facts with evidence of their own.
This module holds the pieces of that format both benchmarks read the same way:
question categories, session dates, a turn's text and evidence ids. Each benchmark
keeps its own data model on top.

Example:
    >>> parse_date("1:56 pm on 8 May, 2023").isoformat()
    '2023-05-08T13:56:00+00:00'
    >>> render_turn({"speaker": "Ana", "text": "Hi!", "blip_caption": "a cat"})
    'Ana said, "Hi!" [shares a cat]'
    >>> evidence_ids(["D1:2; D2:1", "D:1:3", "D1:2"])
    ('D1:2', 'D2:1')
    >>> evidence_turns("D2:1 D1:2")
    ['D1:2', 'D2:1']
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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


def render_turn(
    turn: Mapping[str, Any], text: str | None = None, *, caption_label: str = "shares"
) -> str:
    """A turn as a memory text: ``{speaker} said, "{text}"`` and its shared image's caption.

    A turn that shared an image gains `` [{caption_label} {blip_caption}]``.

    Args:
        turn: A LoCoMo turn, with ``speaker``, ``text`` and maybe ``blip_caption``.
        text: Said instead of the turn's own text (a reworded copy, say).
        caption_label: The word before the caption. The benchmarks differ here
            (``locomo.py``: ``shares``, ``compression.py``: ``shares:``), and their
            cached embeddings and figures are of those exact texts.
    """
    out = f'{turn["speaker"]} said, "{turn["text"] if text is None else text}"'
    caption = turn.get("blip_caption")
    return f"{out} [{caption_label} {caption}]" if caption else out


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
