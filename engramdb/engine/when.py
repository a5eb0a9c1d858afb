"""Dates named in a recall query, softened into a time preference (pure functions).

A question such as "What did Tim say about his injury on 16 November, 2023?" names
when the memory was made. Hybrid recall turns each date the query names into a
span (a day, a month or a year) and gives each candidate a preference between 0
and 1: 1 inside a span, falling off as ``exp(-days / scale)`` outside it. The
preference adds to relevance (``HybridWeights.date``); it never filters, so a
memory from another day that matches the words well still wins.

Only dates that stand alone are read: a day with its month and year ("16 November
2023", "November 16, 2023", "2023-11-16", "8th December, 2023"), a month with its
year ("August 2023") and a year after a preposition ("in 2023"). A month without a
year and relative phrases ("last week") are left alone: which year or week they
mean depends on when the question was asked, which recall does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

__all__ = ["DateSpan", "date_preference", "query_dates"]

_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        )
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_PATTERNS = (
    ("day", re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<mon>[01]?\d)-(?P<day>[0-3]?\d)\b")),
    ("day", re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s*{_YEAR}\b", re.IGNORECASE)),
    ("day", re.compile(rf"\b{_MONTH}\s+{_DAY},?\s*{_YEAR}\b", re.IGNORECASE)),
    ("month", re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.IGNORECASE)),
    (
        "year",
        re.compile(
            rf"\b(?:in|during|throughout|since|until|before|after|by|early|late|mid)"
            rf"[\s-]+{_YEAR}\b",
            re.IGNORECASE,
        ),
    ),
)
_DAY_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class DateSpan:
    """A span of time a query names, in UTC epoch seconds: ``[start, end)``."""

    start: float
    end: float
    text: str


def _span(kind: str, m: re.Match[str]) -> DateSpan | None:
    """The span one match names, or None when it is no real date (31 February)."""
    year = int(m["year"])
    month = int(m["mon"]) if "mon" in m.re.groupindex else None
    if month is None and kind != "year":
        month = _MONTHS[m["month"].lower()]
    try:
        if kind == "day":
            start = datetime(year, month or 1, int(m["day"]), tzinfo=UTC)
            end = start.timestamp() + _DAY_SECONDS
        elif kind == "month":
            start = datetime(year, month or 1, 1, tzinfo=UTC)
            nxt = datetime(year + (month == 12), (month or 1) % 12 + 1, 1, tzinfo=UTC)
            end = nxt.timestamp()
        else:
            start = datetime(year, 1, 1, tzinfo=UTC)
            end = datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return DateSpan(start.timestamp(), end, m.group(0))


def query_dates(text: str) -> list[DateSpan]:
    """The dates a query names, most precise first; each stretch of text is read once.

    >>> [s.text for s in query_dates("What did Tim say on 16 November, 2023 about 2023?")]
    ['16 November, 2023']
    >>> [s.text for s in query_dates("Which city did John recommend in January 2024?")]
    ['January 2024']
    >>> query_dates("What did she say in May?")
    []
    """
    taken: list[tuple[int, int]] = []
    spans: list[DateSpan] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < b and a < m.end() for a, b in taken):
                continue
            taken.append((m.start(), m.end()))  # an impossible date is read, and no date
            span = _span(kind, m)
            if span is not None:
                spans.append(span)
    return spans


def date_preference(created: np.ndarray, spans: list[DateSpan], scale_days: float) -> np.ndarray:
    """Each creation time's preference in [0, 1]: 1 inside a span, ``exp(-days/scale)`` outside.

    The best span counts when the query names several.
    """
    best = np.zeros(len(created), np.float64)
    for s in spans:
        before = np.maximum(s.start - created, 0.0)
        after = np.maximum(created - (s.end - 1e-9), 0.0)
        days = (before + after) / _DAY_SECONDS
        best = np.maximum(best, np.exp(-days / scale_days))
    return best
