"""Dates named in a query: which are read, the time preference, and what it changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from engramdb import MemoryEngine, Settings
from engramdb.config import HybridWeights
from engramdb.engine.when import date_preference, query_dates


def _day(y: int, m: int, d: int) -> float:
    return datetime(y, m, d, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("what happened on 16 November, 2023?", (2023, 11, 16), (2023, 11, 17)),
        ("what happened on November 16, 2023?", (2023, 11, 16), (2023, 11, 17)),
        ("the forest picture of December 1,2023", (2023, 12, 1), (2023, 12, 2)),
        ("the book from 8th December, 2023", (2023, 12, 8), (2023, 12, 9)),
        ("the 3rd of Sept 2021 meeting", (2021, 9, 3), (2021, 9, 4)),
        ("notes dated 2024-02-29", (2024, 2, 29), (2024, 3, 1)),
        ("what did Tim learn in August 2023", (2023, 8, 1), (2023, 9, 1)),
        ("the deal he got in December 2023", (2023, 12, 1), (2024, 1, 1)),
        ("which charity event in 2024", (2024, 1, 1), (2025, 1, 1)),
    ],
)
def test_a_named_date_is_read_as_its_day_month_or_year(
    text: str, start: tuple[int, int, int], end: tuple[int, int, int]
) -> None:
    (span,) = query_dates(text)
    assert (span.start, span.end) == (_day(*start), _day(*end))


@pytest.mark.parametrize(
    "text",
    [
        "what did she say in May?",  # no year: which May depends on when it was asked
        "what did he do last week?",
        "we sold 2023 tickets",  # a number, not a year after a preposition
        "on 31 February 2023",  # no such day
        "the 2023-13-01 report",  # no such month
    ],
)
def test_no_date_is_read_where_none_is_named(text: str) -> None:
    assert query_dates(text) == []


def test_a_stretch_of_text_is_read_once_most_precise_first() -> None:
    spans = query_dates("from 2 March 2022 to April 2023")
    assert [s.text for s in spans] == ["2 March 2022", "April 2023"]


def test_the_preference_is_one_inside_a_span_and_falls_off_outside() -> None:
    (span,) = query_dates("on 10 May 2023")
    created = np.array([_day(2023, 5, 10) + 3600, _day(2023, 5, 13), _day(2023, 5, 7), 0.0])
    pref = date_preference(created, [span], scale_days=3.0)
    assert pref[0] == 1.0
    assert pref[1] == pytest.approx(np.exp(-2 / 3), rel=1e-6)  # two days after the span's end
    assert pref[2] == pytest.approx(np.exp(-3 / 3), rel=1e-6)
    assert pref[3] == pytest.approx(0.0, abs=1e-12)
    assert date_preference(created, [], 3.0).tolist() == [0.0] * 4


def _diary(root: Path, settings: Settings | None = None) -> MemoryEngine:
    eng = MemoryEngine.open(root, embedder="hashing", settings=settings)
    for day in range(1, 21):
        eng.add(
            "went for a long run along the river",
            agent="a",
            session=f"s{day}",
            created_at=datetime(2023, 6, day, 12, tzinfo=UTC),
        )
    return eng


def test_a_date_in_the_query_prefers_memories_from_that_day(tmp_path: Path) -> None:
    with _diary(tmp_path / "s") as eng:
        query = "the long run along the river on 7 June 2023"
        hits = eng.recall(query, agent="a", k=3, record_access=False)
        assert hits[0].memory.created_at.day == 7
        grouped = eng.recall(query, agent="a", k=3, group_by="session", record_access=False)
        assert grouped[0].group == "s7"
        # Without the date, the newest of the identical memories wins (recency).
        plain = eng.recall("the long run along the river", agent="a", k=1, record_access=False)
        assert plain[0].memory.created_at.day == 20
        # mode="dense" is unchanged by dates: still the newest.
        dense = eng.recall(query, agent="a", k=1, mode="dense", record_access=False)
        assert dense[0].memory.created_at.day == 20


def test_date_weight_zero_turns_the_preference_off(tmp_path: Path) -> None:
    off = Settings(hybrid=HybridWeights(date=0.0))
    with _diary(tmp_path / "s", off) as eng:
        hits = eng.recall("a long run along the river on 7 June 2023", agent="a", k=1)
        assert hits[0].memory.created_at.day == 20
