"""Consolidation job on Ray against the local job: time, start-up cost, memory, same result.

Usage:
    python benchmarks/consolidate_ray.py [--agents 20] [--per-agent 5k] [--num-cpus 2]
        [--dim 384] [--threads 1] [--seed 0] [--out DIR] [--work DIR]

One store of ``--agents`` agents x ``--per-agent`` synthetic memories (seeded
clustered vectors, a fifth of each agent's memories near-copies of others, dates
spread over a year: every stage of the pass has work; hashing embedder, vectors
given) is built once and copied. In one run, one after the other:

- **local**: ``engine.consolidate()`` over every agent, as ``engramdb consolidate
  --all`` runs it; the progress events split each agent's time into reading,
  planning and the commit (the part the Ray job cannot spread);
- **ray**: a local Ray with ``--num-cpus`` workers is started (timed: ``init``),
  each worker imports engramdb once (timed: ``warm-up``, a cost a long-lived
  cluster pays once), then :func:`engramdb.consolidation.ray_job.consolidate_on_ray`
  plans the agents in parallel tasks while this process commits them (timed: ``job``).

Reported: seconds of each, the ratio local / Ray (job alone, and with start-up),
peak RSS of this process and of all Ray processes together (sampled every 0.1 s;
shared pages count once per process, so the Ray sum is an upper bound), and
whether both stores hold the same memories afterwards (texts, kinds, statuses,
provenance, vectors). Writes ``benchmarks/results/consolidate_ray-*.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    add_common_args,
    markdown_table,
    parse_size,
    rss_bytes,
    scratch_dir,
    set_threads,
    synthetic_vectors,
    write_record,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
_MB = 2**20


def build_store(root: Path, *, agents: int, per_agent: int, dim: int, seed: int) -> None:
    """Each agent: clustered vectors, a fifth of them near-copies, dates over a year."""
    from engramdb import MemoryEngine

    with MemoryEngine.open(root, embedder=f"hashing-{dim}") as engine:
        for a in range(agents):
            rng = np.random.default_rng([seed, a])
            n_copies = per_agent // 5
            base = synthetic_vectors(per_agent - n_copies, dim=dim, seed=seed, stream=a)
            src = rng.integers(0, len(base), n_copies)
            copies = base[src] + 0.01 * rng.standard_normal((n_copies, dim)).astype(np.float32)
            copies /= np.linalg.norm(copies, axis=1, keepdims=True)
            vectors = np.vstack([base, copies])
            texts = [f"note {i}: item {i % 997} of topic {i % 89}" for i in range(len(base))]
            texts += [f"Note {s}: item {s % 997} of topic {s % 89}." for s in src]
            spread = rng.integers(0, 365 * 86400, per_agent)
            items = [
                {"text": t, "created_at": T0 + timedelta(seconds=int(s)), "vector": v}
                for t, s, v in zip(texts, spread, vectors, strict=True)
            ]
            engine.add_many(items, agent=f"agent{a:03d}")


def contents(root: Path, dim: int) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every agent's memories up to the ids and times a pass makes up."""
    from engramdb import MemoryEngine

    out = {}
    with MemoryEngine.open(root, embedder=f"hashing-{dim}", read_only=True) as engine:
        for agent in engine.agents():
            stored = {m.id: m for m in engine.list(agent=agent, limit=None, include_archived=True)}
            rows = engine.store.scan_agent(agent, columns=["id", "vector"])
            vectors = dict(
                zip(
                    rows.column("id").to_pylist(),
                    np.asarray(rows.column("vector").to_pylist(), np.float32).round(5).tolist(),
                    strict=True,
                )
            )
            out[agent] = Counter(
                (
                    m.text,
                    m.kind.value,
                    m.status.value,
                    tuple(sorted(stored[s].text for s in m.source_ids if s in stored)),
                    stored[m.parent_id].text if m.parent_id in stored else None,
                    tuple(vectors[m.id]),
                )
                for m in stored.values()
            )
    return out


def _ray_rss() -> int:
    """RSS of the Ray processes this one started (daemons, and workers below them)."""
    import psutil

    total = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


@contextmanager
def peak_rss(with_ray: bool) -> Iterator[dict[str, float]]:
    """Sample RSS (this process, and Ray's) every 0.1 s while the block runs."""
    peaks = {"driver_mb": rss_bytes() / _MB, "ray_mb": _ray_rss() / _MB if with_ray else 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peaks["driver_mb"] = max(peaks["driver_mb"], rss_bytes() / _MB)
            if with_ray:
                peaks["ray_mb"] = max(peaks["ray_mb"], _ray_rss() / _MB)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


def run_local(root: Path, dim: int) -> dict[str, Any]:
    """The local job; progress events split each agent's time into read, plan and commit."""
    from engramdb import MemoryEngine
    from engramdb.consolidation.report import ProgressEvent

    marks: list[tuple[str, float]] = []
    last = [0.0]

    def progress(event: ProgressEvent) -> None:
        now = time.perf_counter()
        marks.append((event.step, now - last[0]))
        last[0] = now

    with MemoryEngine.open(root, embedder=f"hashing-{dim}") as engine, peak_rss(False) as rss:
        start = last[0] = time.perf_counter()
        report = engine.consolidate(progress=progress)
        seconds = time.perf_counter() - start
    parts = Counter[str]()
    for step, dt in marks:
        parts["read" if step == "load" else "commit" if step == "write" else "plan"] += dt
    return {
        "seconds": seconds,
        "read_s": parts["read"],
        "plan_s": parts["plan"],
        "commit_s": parts["commit"],
        "active_before": report.active_before,
        "active_after": report.active_after,
        "peak_rss_mb": rss["driver_mb"],
    }


def run_ray(root: Path, dim: int, num_cpus: int) -> dict[str, Any]:
    """Start a local Ray, warm its workers, then run the job on it."""
    from engramdb import MemoryEngine
    from engramdb.consolidation.ray_job import consolidate_on_ray, ray_session

    def warm() -> int:  # local, so Ray ships it by value: workers need not import this script
        import engramdb.consolidation.ray_job  # noqa: F401  (the import is the warm-up)

        return os.getpid()

    with peak_rss(True) as rss:
        start = time.perf_counter()
        with ray_session(num_cpus=num_cpus) as ray:
            init = time.perf_counter() - start
            warm_task = ray.remote(warm).options(num_cpus=1)
            t0 = time.perf_counter()
            pids = set(ray.get([warm_task.remote() for _ in range(4 * num_cpus)]))
            warm = time.perf_counter() - t0
            with MemoryEngine.open(root, embedder=f"hashing-{dim}") as engine:
                t0 = time.perf_counter()
                report = consolidate_on_ray(engine)
                job = time.perf_counter() - t0
            t0 = time.perf_counter()
        shutdown = time.perf_counter() - t0
    return {
        "init_s": init,
        "warmup_s": warm,
        "warm_workers": len(pids),
        "seconds": job,
        "shutdown_s": shutdown,
        "total_s": init + warm + job,
        "active_before": report.active_before,
        "active_after": report.active_after,
        "peak_rss_mb": rss["driver_mb"],
        "ray_peak_rss_mb": rss["ray_mb"],
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--per-agent", type=parse_size, default=parse_size("5k"))
    parser.add_argument("--num-cpus", type=int, default=2, help="workers of the local Ray")
    parser.add_argument("--dim", type=int, default=384)
    add_common_args(parser, threads=1)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load = os.getloadavg()
    with scratch_dir(args.work, "consolidate-ray-") as work:
        local_root, ray_root = work / "local", work / "ray"
        t0 = time.perf_counter()
        build_store(
            local_root, agents=args.agents, per_agent=args.per_agent, dim=args.dim, seed=args.seed
        )
        build_s = time.perf_counter() - t0
        shutil.copytree(local_root, ray_root)
        local = run_local(local_root, args.dim)
        ray = run_ray(ray_root, args.dim, args.num_cpus)
        same = contents(local_root, args.dim) == contents(ray_root, args.dim)
    serial = local["commit_s"] / local["seconds"] if local["seconds"] else 0.0
    figures = {
        "local": local,
        "ray": ray,
        "same_contents": same,
        "speedup_job": local["seconds"] / ray["seconds"],
        "speedup_with_startup": local["seconds"] / ray["total_s"],
        "commit_fraction_local": serial,
        "amdahl_bound": 1.0 / (serial + (1.0 - serial) / args.num_cpus),
        "build_s": build_s,
        "load_average_at_start": [round(x, 2) for x in load],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    rows = [
        ["local job", local["seconds"], "-", "-", local["peak_rss_mb"], "-"],
        [
            f"Ray job ({args.num_cpus} CPUs)",
            ray["seconds"],
            ray["init_s"],
            ray["warmup_s"],
            ray["peak_rss_mb"],
            ray["ray_peak_rss_mb"],
        ],
    ]
    table = markdown_table(
        ["run", "job s", "ray.init s", "warm-up s", "peak RSS MB (this process)", "Ray RSS MB"],
        rows,
    )
    table += (
        f"\n{args.agents} agents x {args.per_agent} memories; active "
        f"{local['active_before']} -> {local['active_after']} (local), "
        f"{ray['active_before']} -> {ray['active_after']} (Ray); same contents: {same}.\n"
        f"Local / Ray: {figures['speedup_job']:.2f}x the job alone, "
        f"{figures['speedup_with_startup']:.2f}x with start-up. Local time split: read "
        f"{local['read_s']:.1f} s, plan {local['plan_s']:.1f} s, commit {local['commit_s']:.1f} s "
        f"(serial in the Ray job too: bound {figures['amdahl_bound']:.2f}x on "
        f"{args.num_cpus} CPUs). Load average {figures['load_average_at_start']} at the start.\n"
    )
    params = {k: v for k, v in vars(args).items() if k not in ("out", "work")}
    path = write_record(
        "consolidate_ray",
        params=params,
        threads=threads,
        figures=figures,
        table=table,
        out_dir=args.out,
    )
    print(table)
    return path


if __name__ == "__main__":
    main()
