"""The consolidation pass over a store: plan each agent, then write it back in one commit.

An agent's pass has two halves. :func:`plan_stored_agent` reads the agent's rows
(one scan) and plans its consolidation in memory (:func:`~engramdb.consolidation.plan.plan_agent`);
it writes nothing, so it can run anywhere the store can be read, a read-only
handle in another process included (:mod:`engramdb.consolidation.ray_job` runs
it as Ray tasks). :func:`commit_plan` then writes the plan with one
:meth:`~engramdb.store.table.MemoryTable.replace_agent_rows` call, which is one
LanceDB commit, on the engine that holds the writer lock: a pass killed at any
point leaves every agent either as it was or fully consolidated. An agent whose
plan changes nothing is not written, so a second pass right after the first
writes nothing at all.

What each stage does to the records is described in :mod:`engramdb.consolidation.plan`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from engramdb._types import FloatMatrix
from engramdb.config import Settings
from engramdb.consolidation import ConsolidationPolicy
from engramdb.consolidation.plan import CONSOLIDATED_KEY, count_memories, plan_agent
from engramdb.consolidation.report import (
    STEPS,
    AgentReport,
    ConsolidationReport,
    ProgressCallback,
    ProgressEvent,
)
from engramdb.errors import NotFoundError, ValidationError
from engramdb.ports import EngineCore
from engramdb.records import check_name
from engramdb.store.schema import arrow_to_memories, arrow_vectors, memories_to_arrow
from engramdb.store.table import MemoryTable

__all__ = [
    "CONSOLIDATED_KEY",
    "AgentPlan",
    "AgentReport",
    "ConsolidationReport",
    "ProgressEvent",
    "commit_plan",
    "plan_agent",
    "plan_stored_agent",
    "resolve_policy",
    "run_consolidation",
]


@dataclass(frozen=True, slots=True)
class AgentPlan:
    """One agent's consolidation, planned from the store and not yet written.

    A plan is a plain value (Arrow rows and counters), so it can be made in one
    process and committed in another.

    Attributes:
        agent: The agent.
        rows: The agent's complete memory after the pass, in the store's schema;
            None when the pass changes nothing (there is nothing to write).
        before: Memories before, as ``{kind: {status: count}}``.
        after: Memories after, likewise.
        stats: Counters by stage (``expired``, ``groups_merged``, ...).
        bytes_before: Arrow size of the agent's rows before.
        version: The store version the agent was read at.
        seconds: Time spent reading and planning.
    """

    agent: str
    rows: pa.Table | None
    before: dict[str, dict[str, int]]
    after: dict[str, dict[str, int]]
    stats: dict[str, int]
    bytes_before: int
    version: int
    seconds: float

    @property
    def changed(self) -> bool:
        """Whether committing the plan writes anything."""
        return self.rows is not None


def resolve_policy(policy: object) -> ConsolidationPolicy:
    """A policy from a :class:`ConsolidationPolicy`, a dict of its fields, or None (defaults)."""
    if policy is None:
        return ConsolidationPolicy()
    if isinstance(policy, ConsolidationPolicy):
        return policy
    if isinstance(policy, Mapping):
        return ConsolidationPolicy.from_mapping(policy)
    raise ValidationError(
        f"policy {policy!r:.80} is not a ConsolidationPolicy; pass one, a dict of its "
        "fields, or None for the defaults"
    )


def plan_stored_agent(
    store: MemoryTable,
    agent: str,
    policy: ConsolidationPolicy,
    *,
    settings: Settings,
    embed: Callable[[Sequence[str]], FloatMatrix] | None = None,
    step: Callable[[str], None] | None = None,
) -> AgentPlan:
    """Read one agent from ``store`` and plan its consolidation; nothing is written.

    Args:
        store: The store of record; a read-only handle will do.
        agent: The agent.
        policy: The policy.
        settings: Supplies ``working_capacity`` and ``max_text_bytes``.
        embed: Embeds a user summarizer's gists (unused without ``policy.summarize``).
        step: Called with the name of each step done (``"load"``, then the stages).

    Raises:
        NotFoundError: the agent has no memories in the store.
        ValidationError: a summarizer returned no usable text.
    """
    start = time.perf_counter()
    step = step or (lambda _: None)
    dim = store.dim
    version = store.version
    rows = store.scan_agent(agent)
    if rows.num_rows == 0:
        raise NotFoundError(f"agent {agent!r} has no memories in {store.root}; see engine.agents()")
    memories = arrow_to_memories(rows)
    step("load")
    after, after_vectors, stats, changed = plan_agent(
        memories,
        arrow_vectors(rows, dim),
        policy=policy,
        working_capacity=settings.working_capacity,
        max_text_bytes=settings.max_text_bytes,
        embed=embed,
        on_step=step,
    )
    planned = (
        memories_to_arrow(after, after_vectors.reshape(len(after), dim), dim) if changed else None
    )
    return AgentPlan(
        agent=agent,
        rows=planned,
        before=count_memories(memories),
        after=count_memories(after),
        stats=stats,
        bytes_before=int(rows.nbytes),
        version=version,
        seconds=time.perf_counter() - start,
    )


def commit_plan(engine: EngineCore, plan: AgentPlan, *, dry_run: bool = False) -> AgentReport:
    """Write a plan in one commit (nothing when it changes nothing, or in a dry run).

    The caller holds the engine's lock and the store's writer lock, and nothing
    but this pass has written the agent since ``plan.version`` (the writer lock
    keeps other processes out): the plan replaces the agent's whole memory.
    """
    start = time.perf_counter()
    if plan.rows is None:
        bytes_after = plan.bytes_before
    elif dry_run:
        bytes_after = plan.rows.nbytes
    else:
        engine.store.replace_agent_rows(plan.agent, plan.rows)
        engine.invalidate(plan.agent)
        bytes_after = engine.store.scan_agent(plan.agent).nbytes
    return AgentReport(
        agent=plan.agent,
        before=plan.before,
        after=plan.after,
        bytes_before=plan.bytes_before,
        bytes_after=int(bytes_after),
        seconds=plan.seconds + time.perf_counter() - start,
        changed=plan.changed,
        **plan.stats,
    )


def run_consolidation(
    engine: EngineCore,
    *,
    agent: str | None = None,
    policy: ConsolidationPolicy | Mapping[str, Any] | None = None,
    dry_run: bool = False,
    progress: bool | ProgressCallback = False,
) -> ConsolidationReport:
    """Consolidate one agent (or every agent) of an open, writable engine.

    Holds the engine's lock for the whole pass; flushes buffered access counts
    first, so summed counts are current. See :mod:`engramdb.consolidation.plan`
    for the stages.

    Args:
        engine: The engine.
        agent: One agent; None: every agent in the store.
        policy: A :class:`~engramdb.consolidation.ConsolidationPolicy` (or a dict of
            its fields); None: the defaults.
        dry_run: Report what would change and write nothing.
        progress: True for a progress bar, or a callable receiving
            :class:`ProgressEvent` after each step of each agent.

    Raises:
        NotFoundError: ``agent`` has no memories.
        ValidationError: a bad policy, or a summarizer that returned no usable text.
    """
    resolved = resolve_policy(policy)
    with engine.mutex:
        engine.check_writable()
        if agent is not None:
            check_name(agent, what="agent")
        if not dry_run:
            engine.flush()
        start = time.perf_counter()
        names = [agent] if agent is not None else engine.agents()
        bar = (
            tqdm(total=len(names) * len(STEPS), desc="consolidating", unit="step")
            if progress is True
            else None
        )
        reports = []
        try:
            for index, name in enumerate(names):
                done = 0

                def step(what: str, name: str = name, index: int = index) -> None:
                    nonlocal done
                    done += 1
                    if bar is not None:
                        bar.set_postfix_str(f"{name}: {what}")
                        bar.update(1)
                    elif callable(progress):
                        progress(ProgressEvent(name, index, len(names), what, done))

                plan = plan_stored_agent(
                    engine.store,
                    name,
                    resolved,
                    settings=engine.settings,
                    embed=engine.embedder.embed,
                    step=step,
                )
                reports.append(commit_plan(engine, plan, dry_run=dry_run))
                step("write")
        finally:
            if bar is not None:
                bar.close()
        return ConsolidationReport(
            agents=tuple(reports),
            dry_run=dry_run,
            seconds=time.perf_counter() - start,
            policy=resolved.model_dump(mode="json"),
        )
