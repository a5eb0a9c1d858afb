"""Values print short: one line for a memory, a hit, a snapshot's info or a consolidation
report, never the arrays behind them; a report iterates, counts and tests membership."""

from __future__ import annotations

from pathlib import Path

import pytest

from engramdb import MemoryEngine
from engramdb.errors import NotFoundError


def test_reprs_are_short(engine: MemoryEngine, tmp_path: Path) -> None:
    long = "Alice moved to Lisbon in May, and " + "she liked it there very much, " * 20
    engine.add(long, agent="a", kind="semantic")
    engine.add(long + "!", agent="a", kind="semantic")
    hit = engine.recall("Lisbon", agent="a")[0]
    assert repr(hit).startswith("Hit(score=") and len(repr(hit)) < 220
    assert "kind='semantic'" in repr(hit.memory) and "…" in repr(hit.memory)

    report = engine.consolidate(agent="a")
    assert repr(report).startswith("ConsolidationReport(agents=['a'], active=2->1")
    assert repr(report["a"]).startswith("AgentReport(agent='a', active=2->1, merged=1")
    merged = engine.list(agent="a", limit=None, include_archived=True)
    archived = next(m for m in merged if m.status.value == "archived")
    assert "status='archived'" in repr(archived)

    info = engine.export_snapshot(tmp_path / "a.engram", agent="a", vectors="int8")
    assert len(repr(info)) < 300 and "manifest" not in repr(info)
    assert info.sha256 in repr(info)


def test_a_consolidation_report_iterates_over_its_agents(engine: MemoryEngine) -> None:
    engine.add("one", agent="a")
    engine.add("two", agent="b")
    report = engine.consolidate(dry_run=True)
    assert [r.agent for r in report] == ["a", "b"] == [r.agent for r in list(report)]
    assert len(report) == 2 and "a" in report and "c" not in report
    with pytest.raises(NotFoundError, match="it covers"):
        report["c"]
