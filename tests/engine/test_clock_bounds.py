"""One wrong timestamp cannot age a whole agent: created_at is bounded, clocks are capped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from engramdb import MemoryEngine, Settings, ValidationError
from engramdb.records import new_id


def _now() -> datetime:
    return datetime.now(UTC)


def test_future_created_at_is_refused(engine: MemoryEngine) -> None:
    with pytest.raises(ValidationError, match="in the future"):
        engine.add("from the future", agent="a", created_at=_now() + timedelta(days=3650))
    with pytest.raises(ValidationError, match="in the future"):
        engine.add_many(
            ["fine", {"text": "ahead", "created_at": _now() + timedelta(hours=1)}], agent="a"
        )
    assert engine.agents() == []  # all or nothing


def test_created_at_before_1970_is_refused(engine: MemoryEngine) -> None:
    with pytest.raises(ValidationError, match="before 1970"):
        engine.add("old", agent="a", created_at=datetime(1969, 12, 31, 23, 59, tzinfo=UTC))
    assert engine.agents() == []


def test_skew_is_configurable(tmp_path: Path) -> None:
    settings = Settings(max_clock_skew=timedelta(0))
    with MemoryEngine.open(tmp_path / "s", embedder="hashing", settings=settings) as engine:
        with pytest.raises(ValidationError, match="max_clock_skew"):
            engine.add("a second ahead", agent="a", created_at=_now() + timedelta(seconds=2))


def test_memory_at_the_edge_then_default_consolidation_keeps_the_rest(
    engine: MemoryEngine,
) -> None:
    now = _now()
    for i in range(7):
        engine.add(f"distinct fact number {i} about topic {i * 7}", agent="a",
                   created_at=now - timedelta(minutes=i))  # fmt: skip
    edge = now + engine.settings.max_clock_skew - timedelta(seconds=5)
    engine.add("written by a clock slightly ahead", agent="a", created_at=edge)
    report = engine.consolidate(agent="a")["a"]
    assert report.active_before == report.active_after == 8
    assert engine.count(agent="a", include_archived=False) == 8


def test_stored_outlier_does_not_age_the_agent(engine: MemoryEngine) -> None:
    """A store written before the bound may already hold a far-future memory: the
    recall and consolidation clocks are capped at the wall clock, so it ages nothing."""
    now = _now()
    for i in range(7):
        engine.add(f"distinct fact number {i} about topic {i * 7}", agent="a",
                   created_at=now - timedelta(minutes=i))  # fmt: skip
    future = now + timedelta(days=3650)
    template = engine.list(agent="a")[0]
    outlier = template.model_copy(
        update={"id": new_id(future), "text": "dated ten years ahead", "created_at": future}
    )
    engine.store.append([outlier], np.ones((1, engine.embedder.dim), np.float32) / 16)
    engine.invalidate("a")
    hits = engine.recall("distinct fact", agent="a", k=8)
    by_text = {h.memory.text: h for h in hits}
    assert by_text["distinct fact number 0 about topic 0"].recency > 0.99
    report = engine.consolidate(agent="a")["a"]
    assert report.active_after == report.active_before == 8


def test_ids_sort_by_time_across_the_allowed_range() -> None:
    times = [datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
             datetime(2001, 9, 9, tzinfo=UTC), _now()]  # fmt: skip
    ids = [new_id(t) for t in times]
    assert ids == sorted(ids)
    # out of range (refused on input): the nearest end, never wrapped round
    assert new_id(datetime(1960, 1, 1, tzinfo=UTC)) <= ids[1]
    assert new_id(datetime(9999, 1, 1, tzinfo=UTC)) >= ids[-1]


def test_snapshot_with_future_dates_is_refused(tmp_path: Path) -> None:
    with MemoryEngine.open(tmp_path / "src", embedder="hashing") as src:
        src.add("now", agent="a")
        src.store.append(
            [src.list(agent="a")[0].model_copy(
                update={"id": new_id(_now() + timedelta(days=30)), "text": "later",
                        "created_at": _now() + timedelta(days=30)})],
            np.ones((1, src.embedder.dim), np.float32) / 16,
        )  # fmt: skip
        src.export_snapshot(tmp_path / "a.egm", agent="a")
    with MemoryEngine.open(tmp_path / "dst", embedder="hashing") as dst:
        with pytest.raises(ValidationError, match="1 memories dated in the future"):
            dst.import_snapshot(tmp_path / "a.egm")
        assert dst.agents() == []
