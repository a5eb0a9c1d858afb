"""What a consolidation pass reports: per agent and for the whole pass, and its progress events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from engramdb.errors import NotFoundError

__all__ = ["STEPS", "AgentReport", "ConsolidationReport", "ProgressCallback", "ProgressEvent"]

STEPS = ("load", "expire", "dedup", "cluster", "forget", "write")
"""The steps of one agent's pass, in order; a progress event follows each."""
_ACTIVE = "active"


@dataclass(frozen=True)
class ProgressEvent:
    """A step of a pass: ``agent`` (``index`` of ``agents``) finished ``step``."""

    agent: str
    index: int
    agents: int
    step: str
    done: int
    total: int = len(STEPS)


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class AgentReport:
    """What a pass did (or, in a dry run, would do) to one agent.

    Attributes:
        before: Memories before, as ``{kind: {status: count}}``.
        after: Memories after, likewise.
        expired: Deleted by expiry or working-memory eviction.
        groups_merged: Duplicate groups merged, one new memory each.
        duplicates_archived: Memories archived as members of those groups.
        gists: Gists written.
        clustered: Episodes placed under a gist.
        forgotten: Archived by retention.
        deleted: Deleted by retention (with the archived sources they held).
        bytes_before: Arrow size of the agent's rows (vectors included) before.
        bytes_after: The same after.
        seconds: Time taken.
        changed: Whether anything changed (a dry run writes nothing either way).
    """

    agent: str
    before: dict[str, dict[str, int]]
    after: dict[str, dict[str, int]]
    expired: int = 0
    groups_merged: int = 0
    duplicates_archived: int = 0
    gists: int = 0
    clustered: int = 0
    forgotten: int = 0
    deleted: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    seconds: float = 0.0
    changed: bool = False

    @staticmethod
    def _total(counts: dict[str, dict[str, int]], status: str | None = None) -> int:
        return sum(n for by in counts.values() for s, n in by.items() if status in (None, s))

    @property
    def active_before(self) -> int:
        return self._total(self.before, _ACTIVE)

    @property
    def active_after(self) -> int:
        return self._total(self.after, _ACTIVE)

    @property
    def total_before(self) -> int:
        return self._total(self.before)

    @property
    def total_after(self) -> int:
        return self._total(self.after)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(active_before=self.active_before, active_after=self.active_after)
        return out

    def __repr__(self) -> str:
        return (
            f"AgentReport(agent={self.agent!r}, active={self.active_before}->"
            f"{self.active_after}, merged={self.groups_merged}, gists={self.gists}, "
            f"forgotten={self.forgotten}, deleted={self.deleted}, expired={self.expired})"
        )


@dataclass(frozen=True)
class ConsolidationReport:
    """The report of a pass: one :class:`AgentReport` per agent, in order.

    Iterating gives each agent's report; ``report[name]`` finds one, ``name in
    report`` says whether the pass covered it, and ``len(report)`` counts them.

    Example:
        >>> report = engine.consolidate(agent="bot", dry_run=True)
        >>> [r.agent for r in report], len(report), "bot" in report
        (['bot'], 1, True)
    """

    agents: tuple[AgentReport, ...]
    dry_run: bool
    seconds: float
    policy: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, agent: str) -> AgentReport:
        for report in self.agents:
            if report.agent == agent:
                return report
        raise NotFoundError(
            f"no agent {agent!r} in this report; it covers {[r.agent for r in self.agents]}"
        )

    def __iter__(self) -> Iterator[AgentReport]:
        return iter(self.agents)

    def __len__(self) -> int:
        return len(self.agents)

    def __contains__(self, agent: object) -> bool:
        return any(r.agent == agent for r in self.agents)

    def __repr__(self) -> str:
        names = [r.agent for r in self.agents]
        shown = names if len(names) <= 5 else [*names[:5], f"... {len(names) - 5} more"]
        return (
            f"ConsolidationReport(agents={shown}, active={self.active_before}->"
            f"{self.active_after}, dry_run={self.dry_run}, seconds={self.seconds:.2f})"
        )

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.agents)

    @property
    def active_before(self) -> int:
        return sum(r.active_before for r in self.agents)

    @property
    def active_after(self) -> int:
        return sum(r.active_after for r in self.agents)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "seconds": self.seconds,
            "policy": self.policy,
            "agents": [r.to_dict() for r in self.agents],
        }
