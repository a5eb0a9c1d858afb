"""``engramdb consolidate``: the batch job that consolidates every agent of a store.

Each agent is consolidated on its own, in one commit; an agent that fails is
reported and the others still run (the exit code says that one failed). A small
journal in the store directory records the agents a run has finished, so a run
that was interrupted resumes where it stopped when the same command is given
again; the journal is removed when every agent has been done.

``--executor ray`` plans the agents as Ray tasks in parallel (on a local Ray, or
the cluster at ``--address``) while this process, which holds the writer lock,
commits each plan as it arrives (:mod:`engramdb.consolidation.ray_job`); the
journal, the progress and the summary are the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engramdb.cli.common import (
    EmbedderOption,
    StorageOptionsOption,
    StoreOption,
    app,
    open_engine,
    store_location,
)
from engramdb.cli.errors import FAILED, cli_message, fail
from engramdb.cli.output import Column, err_console, print_json, print_table
from engramdb.errors import EngramError, ValidationError

if TYPE_CHECKING:
    from rich.progress import Progress

    from engramdb.consolidation import AgentReport, ConsolidationPolicy
    from engramdb.engine import MemoryEngine

__all__ = ["JOURNAL", "consolidate"]

JOURNAL = ".consolidate-journal.json"
"""File in the store directory listing the agents an unfinished run has done (for a store
on object storage, in a directory of this machine's named after the store's URI)."""


class Journal:
    """The finished agents of one run (same selection, same policy), kept on disk."""

    def __init__(self, root: Path, key: str) -> None:
        self.path = root / JOURNAL
        self.key = key
        self.done: list[str] = []
        self.resumed = False
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(self.path.read_text())
            if data["key"] == key:
                self.done = [str(a) for a in data["done"]]
                self.resumed = True

    def finish(self, agent: str) -> None:
        self.done.append(agent)
        data = json.dumps({"key": self.key, "done": self.done, "updated": time.time()})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _remote_journal_dir(uri: str) -> Path:
    """Where this machine keeps the journal of a run over a store on object storage."""
    from engramdb.config import machine_dir

    folder = machine_dir("journals", uri)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Executor(StrEnum):
    """Where the agents are planned: in this process, or as Ray tasks."""

    LOCAL = "local"
    RAY = "ray"


def _run_key(selection: list[str] | None, policy_source: str) -> str:
    blob = json.dumps({"agents": selection, "policy": policy_source}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _mb(before: int, after: int) -> str:
    return f"{before / 2**20:.1f}->{after / 2**20:.1f}"


def _row(agent: str, status: str, report: AgentReport | None, error: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"agent": agent, "status": status}
    if report is not None:
        out.update(report.to_dict())
    if error is not None:
        out["error"] = error
    return out


SUMMARY = (
    Column("agent"),
    Column("status"),
    *(Column(name, numeric=True) for name in ("active", "merged", "gists", "forgot", "expired")),
    Column("MB", numeric=True),
)
"""The summary's columns; seconds go in the note, everything is in ``--json``."""


def _print_summary(rows: list[dict[str, Any]], dry_run: bool, seconds: float | None = None) -> None:
    """The summary table; ``seconds`` is the run's wall time (default: the agents' sum)."""
    cells = []
    for r in rows:
        if "active_before" in r:
            cells.append(
                [
                    r["agent"],
                    r["status"],
                    f"{r['active_before']}->{r['active_after']}",
                    f"{r['groups_merged']} ({r['duplicates_archived']})",
                    f"{r['gists']} ({r['clustered']})",
                    f"{r['forgotten']}/{r['deleted']}",
                    str(r["expired"]),
                    _mb(r["bytes_before"], r["bytes_after"]),
                ]
            )
        else:
            cells.append([r["agent"], r["status"], *[""] * 6])
    if seconds is None:
        seconds = sum(r.get("seconds", 0.0) for r in rows)
    print_table(
        SUMMARY,
        cells,
        title="consolidation (dry run: nothing written)" if dry_run else "consolidation",
        note=f"merged, gists: new memories (members); forgot: archived/deleted; {seconds:.1f} s",
    )


@app.command("consolidate")
def consolidate(
    all_agents: Annotated[bool, typer.Option("--all", help="Every agent in the store.")] = False,
    agents: Annotated[
        list[str] | None,
        typer.Option("--agent", "-a", metavar="NAME", help="An agent (repeat for several)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", metavar="FILE", help="A ConsolidationPolicy as JSON or TOML."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore an interrupted run's journal.")
    ] = False,
    executor: Annotated[
        Executor,
        typer.Option(
            "--executor",
            help="local: plan each agent in this process; ray: plan them as Ray tasks "
            "(pip install 'engramdb[ray]').",
        ),
    ] = Executor.LOCAL,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            metavar="ADDR",
            help="With --executor ray: a Ray cluster (host:6379, ray://host:10001) "
            "[default: a local Ray for this run].",
            show_default=False,
        ),
    ] = None,
    num_cpus: Annotated[
        int | None,
        typer.Option(
            "--num-cpus",
            min=1,
            metavar="N",
            help="With --executor ray and no --address: workers of the local Ray "
            "[default: every core].",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
    storage_option: StorageOptionsOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Consolidate agents' memories: expire, merge duplicates, write gists, forget.

    Each agent is written in one commit, so an interrupted run leaves every agent
    either as it was or consolidated; run the same command again to finish it.
    """
    from engramdb.consolidation import ConsolidationPolicy

    if all_agents == bool(agents):
        raise ValidationError("give either --all or one or more --agent NAME")
    if executor is Executor.LOCAL and (address is not None or num_cpus is not None):
        raise ValidationError(
            "--address and --num-cpus go with --executor ray; add --executor ray, or leave them out"
        )
    if executor is Executor.RAY:
        from engramdb.consolidation.ray_job import import_ray

        import_ray()  # a missing Ray fails before the store is opened
    policy_source = ""
    policy = ConsolidationPolicy()
    if policy_file is not None:
        policy = ConsolidationPolicy.from_file(policy_file)
        policy_source = policy_file.read_text(encoding="utf-8")
    where = store_location(store, storage_option)
    root = where.path if where.is_local else _remote_journal_dir(where.uri)
    with open_engine(store, embedder, options=storage_option) as engine:
        selection = None if all_agents else list(dict.fromkeys(agents or []))
        names = engine.agents() if selection is None else selection
        journal = Journal(root, _run_key(selection, policy_source))
        if restart or dry_run:
            journal.done, journal.resumed = [], False
        if journal.resumed and journal.done:
            err_console.print(
                f"resuming an interrupted run: {len(journal.done)} agent(s) already done"
            )
        start = time.perf_counter()
        if executor is Executor.RAY:
            rows = _run_ray(
                engine,
                names,
                policy,
                dry_run=dry_run,
                journal=journal,
                quiet=as_json,
                address=address,
                num_cpus=num_cpus,
            )
        else:
            rows = _run(engine, names, policy, dry_run=dry_run, journal=journal, quiet=as_json)
        seconds = time.perf_counter() - start
    failed = [r for r in rows if r["status"] == "failed"]
    if not dry_run and not failed:
        journal.clear()
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "store": str(where),
                "executor": executor.value,
                "seconds": seconds,
                "failed": len(failed),
                "agents": rows,
            }
        )
    else:
        _print_summary(rows, dry_run, seconds)
    for r in failed:
        err_console.print(f"{r['agent']} failed: {r['error']}", markup=False)
    if failed:
        fail(
            f"{len(failed)} of {len(rows)} agent(s) failed: "
            + ", ".join(r["agent"] for r in failed)
            + ("; run the same command again to retry them" if not dry_run else ""),
            FAILED,
        )


def _progress(quiet: bool) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=err_console, disable=quiet, transient=False)


def _failure(exc: BaseException) -> str:
    return cli_message(str(exc)) if isinstance(exc, EngramError) else f"{type(exc).__name__}: {exc}"


def _run(
    engine: MemoryEngine,
    names: list[str],
    policy: ConsolidationPolicy,
    *,
    dry_run: bool,
    journal: Journal,
    quiet: bool,
) -> list[dict[str, Any]]:
    from engramdb.consolidation.report import STEPS, ProgressEvent
    from engramdb.consolidation.run import run_consolidation

    rows: list[dict[str, Any]] = []
    with _progress(quiet) as bars:
        overall = bars.add_task("all agents", total=len(names))
        for name in names:
            if name in journal.done:
                rows.append(_row(name, "skipped", None, None))
                bars.advance(overall)
                continue
            task = bars.add_task(f"  {name}", total=len(STEPS))

            def advance(event: ProgressEvent, task: Any = task) -> None:
                bars.update(
                    task, completed=event.done, description=f"  {event.agent}: {event.step}"
                )

            try:
                report = run_consolidation(
                    engine, agent=name, policy=policy, dry_run=dry_run, progress=advance
                )
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one agent failing must not stop the batch
                rows.append(_row(name, "failed", None, _failure(exc)))
                bars.update(task, description=f"  {name}: [red]failed[/red]")
            else:
                rows.append(_row(name, "ok", report[name], None))
                if not dry_run:
                    journal.finish(name)
                bars.update(task, completed=len(STEPS), description=f"  {name}: done")
            bars.advance(overall)
    return rows


def _run_ray(
    engine: MemoryEngine,
    names: list[str],
    policy: ConsolidationPolicy,
    *,
    dry_run: bool,
    journal: Journal,
    quiet: bool,
    address: str | None,
    num_cpus: int | None,
) -> list[dict[str, Any]]:
    """The agents planned as Ray tasks; each plan committed here as it arrives."""
    from engramdb.consolidation.ray_job import (
        describe_failure,
        iter_ray_consolidation,
        ray_session,
    )
    from engramdb.consolidation.report import STEPS

    rows: dict[str, dict[str, Any]] = {}
    todo = [name for name in names if name not in journal.done]
    with _progress(quiet) as bars:
        overall = bars.add_task("all agents", total=len(names))
        for name in names:
            if name in journal.done:
                rows[name] = _row(name, "skipped", None, None)
                bars.advance(overall)
        if todo:
            bars.update(overall, description="all agents (starting Ray)")
            with ray_session(address, num_cpus=num_cpus) as ray:
                cpus = int(ray.cluster_resources().get("CPU", 0))
                bars.update(overall, description=f"all agents (Ray, {cpus} CPUs)")
                for outcome in iter_ray_consolidation(engine, todo, policy, dry_run=dry_run):
                    name = outcome.agent
                    if outcome.error is None:
                        rows[name] = _row(name, "ok", outcome.report, None)
                        if not dry_run:
                            journal.finish(name)
                        bars.add_task(f"  {name}: done", total=len(STEPS), completed=len(STEPS))
                    else:
                        error = (
                            _failure(outcome.error)
                            if isinstance(outcome.error, EngramError)
                            else describe_failure(outcome.error)
                        )
                        rows[name] = _row(name, "failed", None, error)
                        bars.add_task(f"  {name}: [red]failed[/red]", total=len(STEPS))
                    bars.advance(overall)
    return [rows[name] for name in names]
