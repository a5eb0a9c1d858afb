"""The consolidation pass as Ray tasks: agents planned in parallel, committed by the writer.

``engramdb consolidate --all --executor ray`` and :func:`consolidate_on_ray` run
the same pass as :func:`~engramdb.consolidation.run.run_consolidation`, split
where it splits naturally (:mod:`engramdb.consolidation.run`):

* **Planning runs in Ray tasks, one per agent.** A task opens the store
  read-only (no writer lock: any number of readers may), scans its agent and
  plans the consolidation in memory, and returns the plan (the agent's new rows
  as Arrow, and counters). This is the part that costs CPU (similarity graphs,
  clustering, gists), and it runs on as many cores or machines as Ray has.
* **Committing stays in the driver**, the process that opened the engine and
  holds the store's writer lock: as each plan arrives it is written with the
  same one-commit call the local pass uses (:func:`~engramdb.consolidation.run.commit_plan`).

Why not let the tasks write: the store has one writer (a kernel ``flock`` held
by the opening process), and LanceDB commits to one table are serial anyway; tasks
taking the writer in turn would serialize the whole job behind the lock, and
releasing the driver's lock would let another writer in between a plan and its
commit. With one writer the plan stays true until its commit: while the driver
holds the lock nothing else writes to the store, and the driver writes an
agent only with that agent's plan. Commits are the serial part of the job.

Crash safety is the local pass's: each agent is one atomic commit. A task that
dies (its worker killed, its node lost) wrote nothing, so its agent is as it
was; Ray retries it ``retries`` times, and if it still fails the agent is
reported failed and the others go on. A rerun of the CLI command skips the
agents its journal says are done; consolidating an agent twice changes nothing
the second time anyway.

Ray is optional: ``pip install 'engramdb[ray]'``. Without ``address`` a local
Ray is started for the job (``num_cpus`` workers, no dashboard, usage stats
off) and stopped after it; with ``address`` (``"ray://host:10001"`` or
``"host:6379"``) the job joins that cluster, whose workers need engramdb
installed and the store at the same path (a shared file system, or object
storage). If Ray is already initialized in the process, the job uses it.
The policy travels to the workers by pickle: a ``summarize`` given as an import
path (``"pkg.mod:func"``) must be importable there too.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tqdm.auto import tqdm

from engramdb.config import Settings
from engramdb.consolidation import ConsolidationPolicy
from engramdb.consolidation.report import (
    STEPS,
    AgentReport,
    ConsolidationReport,
    ProgressCallback,
    ProgressEvent,
)
from engramdb.consolidation.run import AgentPlan, commit_plan, plan_stored_agent, resolve_policy
from engramdb.embeddings import (
    DEFAULT_MODEL_NAME,
    DeferredEmbedder,
    Embedder,
    EmbedderInfo,
    resolve_embedder,
)
from engramdb.errors import EngramError, ValidationError
from engramdb.ports import EngineCore
from engramdb.records import check_name
from engramdb.store.location import StoreLocation
from engramdb.store.opening import open_table
from engramdb.store.table import MemoryTable

__all__ = [
    "RAY_INSTALL_HINT",
    "AgentOutcome",
    "consolidate_on_ray",
    "describe_failure",
    "import_ray",
    "iter_ray_consolidation",
    "ray_session",
]

RAY_INSTALL_HINT = "pip install 'engramdb[ray]'"
"""How to install what ``--executor ray`` needs."""
DEFAULT_RETRIES = 1
"""Times Ray runs a task again whose worker died (planning is read-only: safe to repeat)."""
_IN_FLIGHT_PER_CPU = 2
"""Tasks submitted per Ray CPU: enough to keep workers busy while the driver commits,
few enough that finished plans (an agent's rows each) do not pile up in memory."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or a ValidationError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ValidationError(
            f"the ray executor needs Ray, which is not installed ({exc}); "
            f"{RAY_INSTALL_HINT}, or use the local executor"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Ray for the length of a job: the running one, a cluster at ``address``, or a local one.

    A Ray this function started is shut down when the block ends; one that was
    already running in the process is left running.

    Args:
        address: A Ray cluster (``"host:6379"``, ``"ray://host:10001"``, ``"auto"``);
            None starts a local Ray.
        num_cpus: Workers of a local Ray (default: every core). Not allowed with
            ``address``: a cluster has its own.

    Raises:
        ValidationError: Ray is not installed, ``num_cpus`` is not positive or is
            given with ``address``, or the cluster cannot be reached.
    """
    ray = import_ray()
    if num_cpus is not None and num_cpus < 1:
        raise ValidationError(f"num_cpus {num_cpus} must be at least 1")
    if ray.is_initialized():
        yield ray
        return
    if address is not None and num_cpus is not None:
        raise ValidationError(
            f"num_cpus {num_cpus} cannot be given with address {address!r}: a cluster has its "
            "own workers; leave one of them out"
        )
    # No usage reporting to Ray's servers; workers inherit the driver's environment.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        with warnings.catch_warnings():
            # Ray starts its daemons by fork and exec; LanceDB and Lance warn of any fork
            # after they are loaded, but an exec'd child shares none of their state.
            warnings.filterwarnings("ignore", "lancedb fork support", RuntimeWarning)
            warnings.filterwarnings("ignore", "lance is not fork-safe", UserWarning)
            if address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
            else:
                ray.init(address=address, **quiet)
    except (OSError, RuntimeError, ValueError) as exc:  # ConnectionError is an OSError
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise ValidationError(
            f"cannot start or join {where}: {type(exc).__name__}: {exc}; check the address "
            "(ray status on the head node prints it), or leave it out for a local Ray"
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True, slots=True)
class _Job:
    """What every planning task needs to open the store and plan an agent (sent once)."""

    token: str
    """Names this job: a worker keeps its store handle for one job only."""
    location: StoreLocation
    """The store: an absolute local path, or a URI with its storage options (which
    then travel to the workers through Ray's object store)."""
    info: tuple[str, int, bool]
    space: str
    settings: Settings
    policy: ConsolidationPolicy
    embedder: Embedder | None
    """A picklable embedder for a summarizer's gists; None: load the store's by name."""


_WORKER: dict[str, tuple[MemoryTable, Embedder]] = {}
"""Per worker process: the current job's read-only store handle and embedder."""


def _worker_store(job: _Job) -> tuple[MemoryTable, Embedder]:
    if job.token not in _WORKER:
        _WORKER.clear()  # a new job: the store may have been replaced since the last one
        info = EmbedderInfo(*job.info)
        store = open_table(
            job.location,
            info,
            space=job.space,
            read_only=True,
            compact_every=job.settings.compact_every,
            retention=job.settings.version_retention,
        )
        # The bundled model is recorded by its model name; only a summarizer loads it.
        spec = "minilm" if info[0] == DEFAULT_MODEL_NAME else info[0]
        embedder = job.embedder or DeferredEmbedder(info, lambda: resolve_embedder(spec))
        _WORKER[job.token] = (store, embedder)
    store, embedder = _WORKER[job.token]
    store.refresh()  # the driver committed other agents since this handle last read
    return store, embedder


def _absolute(where: StoreLocation) -> StoreLocation:
    """``where`` with a local path made absolute; a URI as it is."""
    if not where.is_local:
        return where
    return StoreLocation.of(where.path.absolute())


def _plan_task(job: _Job, agent: str) -> AgentPlan:
    """A Ray task: plan one agent from a read-only handle on the store."""
    store, embedder = _worker_store(job)
    return plan_stored_agent(store, agent, job.policy, settings=job.settings, embed=embedder.embed)


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """One agent's end in a Ray job: its report, or the error that stopped it (nothing written)."""

    agent: str
    report: AgentReport | None
    error: BaseException | None


def _cause(exc: BaseException) -> BaseException:
    """The error a task raised, rather than Ray's wrapper around it."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def iter_ray_consolidation(
    engine: EngineCore,
    agents: Sequence[str],
    policy: ConsolidationPolicy,
    *,
    dry_run: bool = False,
    embedder: Embedder | None = None,
    retries: int = DEFAULT_RETRIES,
    max_in_flight: int | None = None,
) -> Iterator[AgentOutcome]:
    """Plan ``agents`` as Ray tasks and commit each plan as it arrives, in completion order.

    Needs a running Ray (see :func:`ray_session`). Holds the engine's lock until
    the iterator is exhausted or closed; flushes buffered access counts first.
    An agent whose task failed (an error, or a worker that died ``retries + 1``
    times) is yielded with its error and left as it was; so is one whose commit
    failed with an engramdb error. Any other error in the driver ends the job:
    agents already yielded are committed, the rest are untouched.

    Args:
        engine: An engine open for writing (the driver holds the writer lock).
        agents: The agents, each at most once.
        policy: The policy, sent to every task (a ``summarize`` callable must pickle).
        dry_run: Plan and report; write nothing.
        embedder: An embedder for a summarizer's gists, sent to the tasks; None:
            each worker loads the store's embedder by name when first needed.
        retries: Runs again of a task whose worker died.
        max_in_flight: Tasks submitted at once (default: two per Ray CPU).
    """
    ray = import_ray()
    if not ray.is_initialized():
        raise ValidationError("Ray is not running; call this inside ray_session()")
    if retries < 0:
        raise ValidationError(f"retries {retries} must be 0 or more")
    if max_in_flight is not None and max_in_flight < 1:
        raise ValidationError(f"max_in_flight {max_in_flight} must be at least 1")
    names = list(agents)
    for name in names:
        check_name(name, what="agent")
    if len(set(names)) != len(names):
        raise ValidationError(f"agents {names!r:.200} name an agent twice; give each once")
    with engine.mutex:
        engine.check_writable()
        if not dry_run:
            engine.flush()
        job = ray.put(
            _Job(
                token=uuid.uuid4().hex,
                location=_absolute(engine.location),  # workers may have another cwd
                info=(engine.embedder.name, engine.embedder.dim, engine.embedder.normalized),
                space=engine.space,
                settings=engine.settings,
                policy=policy,
                embedder=embedder,
            )
        )
        task = ray.remote(_plan_task).options(num_cpus=1, max_retries=retries)
        limit = max_in_flight or _IN_FLIGHT_PER_CPU * max(
            1, int(ray.cluster_resources().get("CPU", 1))
        )
        queue = iter(names)
        pending: dict[Any, str] = {}

        def submit() -> None:
            for name in queue:
                pending[task.remote(job, name)] = name
                if len(pending) >= limit:
                    return

        submit()
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                name = pending.pop(ref)
                submit()  # keep the workers busy while this plan is committed
                try:
                    plan = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    yield AgentOutcome(name, None, _cause(exc))
                    continue
                try:
                    report = commit_plan(engine, plan, dry_run=dry_run)
                except EngramError as exc:
                    yield AgentOutcome(name, None, exc)
                    continue
                yield AgentOutcome(name, report, None)
        finally:
            for ref in pending:  # an abandoned job: stop planning what nobody will commit
                ray.cancel(ref)


def consolidate_on_ray(
    engine: EngineCore,
    *,
    agents: Sequence[str] | None = None,
    policy: ConsolidationPolicy | Mapping[str, Any] | None = None,
    dry_run: bool = False,
    progress: bool | ProgressCallback = False,
    address: str | None = None,
    num_cpus: int | None = None,
    embedder: Embedder | None = None,
    retries: int = DEFAULT_RETRIES,
) -> ConsolidationReport:
    """Consolidate agents of an open, writable engine with Ray planning them in parallel.

    The result in the store is the local pass's (``engine.consolidate()``); see
    the module docstring for how the work is split.

    Args:
        engine: The engine (this process holds the writer lock).
        agents: The agents; None: every agent in the store.
        policy: A :class:`~engramdb.consolidation.ConsolidationPolicy`, a dict of its
            fields, or None for the defaults.
        dry_run: Report what would change and write nothing.
        progress: True for a progress bar over agents, or a callable receiving a
            :class:`ProgressEvent` (step ``"write"``) as each agent is done.
        address: A Ray cluster; None starts a local Ray for the job (or uses the
            one already running in this process).
        num_cpus: Workers of a local Ray.
        embedder: A picklable embedder for a summarizer's gists (default: the
            store's, loaded by name in each worker that needs it).
        retries: Runs again of a task whose worker died.

    Returns:
        The reports, in the order of ``agents`` (of :meth:`agents` when None).

    Raises:
        ValidationError: Ray is missing or unreachable, or a bad argument.
        EngramError: an agent failed (the first failure is raised, with the
            failed agents named in a note); every other agent was committed.
    """
    resolved = resolve_policy(policy)
    names = list(agents) if agents is not None else engine.agents()
    start = time.perf_counter()
    outcomes: dict[str, AgentOutcome] = {}
    with ray_session(address, num_cpus=num_cpus):
        bar = (
            tqdm(total=len(names), desc="consolidating", unit="agent") if progress is True else None
        )
        try:
            for outcome in iter_ray_consolidation(
                engine, names, resolved, dry_run=dry_run, embedder=embedder, retries=retries
            ):
                outcomes[outcome.agent] = outcome
                if bar is not None:
                    bar.set_postfix_str(outcome.agent)
                    bar.update(1)
                elif callable(progress):
                    index = names.index(outcome.agent)
                    progress(ProgressEvent(outcome.agent, index, len(names), "write", len(STEPS)))
        finally:
            if bar is not None:
                bar.close()
    failed = [outcomes[n] for n in names if outcomes[n].error is not None]
    if failed:
        first = failed[0].error
        assert first is not None
        error = first if isinstance(first, EngramError) else _task_failure(failed[0])
        error.add_note(
            f"{len(failed)} of {len(names)} agent(s) failed and were left as they were: "
            + ", ".join(o.agent for o in failed)
            + "; the others were consolidated; run again to retry"
        )
        raise error
    return ConsolidationReport(
        agents=tuple(_report(outcomes[n]) for n in names),
        dry_run=dry_run,
        seconds=time.perf_counter() - start,
        policy=resolved.model_dump(mode="json"),
    )


def _report(outcome: AgentOutcome) -> AgentReport:
    assert outcome.report is not None
    return outcome.report


def _task_failure(outcome: AgentOutcome) -> EngramError:
    error = EngramError(
        f"consolidating agent {outcome.agent!r} failed in its Ray task: "
        f"{describe_failure(outcome.error)}; nothing of that agent was written"
    )
    error.__cause__ = outcome.error
    return error


def describe_failure(error: BaseException | None) -> str:
    """An agent's failure in one line, whether a task raised it or its worker died."""
    if error is None:
        return ""
    if isinstance(error, EngramError):
        return str(error)
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first}"[:300]
