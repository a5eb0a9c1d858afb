"""Cold start: opening a store and an agent's first recall, with and without the index cache.

Usage:
    python benchmarks/cold_start.py [--size 100k] [--small 10k] [--added 1000]
                                    [--queries 20] [--out DIR] [--work DIR]
                                    [--cache DIR] [--threads 1]

One store holds agent ``big`` (``--size`` memories) and agent ``small``
(``--small``), generated sentences with synthetic 384-d vectors given directly
(the hashing embedder: the cost measured is the engine's, not a model's). Each
phase opens a new engine on the store, in this process, and times ``open`` and
the first recall of ``big`` (a vector query; the view is built then):

1. **no cache**: ``Settings(index_cache=False)``, as before the cache: every row
   and vector read, the HNSW graph built, the lexical index built;
2. **cache written**: the same, and the graph written to the index cache;
3. **fresh cache**: the graph read from the cache (no vector read at all);
4. **stale cache**: after ``--added`` memories written by an engine without
   the cache, the graph read and caught up with the rows written since.

Then the reload of an evicted agent: with a budget that holds one view,
recalls alternate between ``big`` and ``small``, timing the recall that
rebuilds ``small`` (exact index below ``exact_threshold``, so from the store),
and the same for ``big`` (its graph from the cache). Reported also: each view's
estimated bytes per memory (``engine.stats()``) and the process's resident
memory before and after the first recall of phase 1.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    add_common_args,
    cached_synthetic,
    generated_sentences,
    markdown_table,
    parse_size,
    percentiles,
    rss_bytes,
    scratch_dir,
    set_offline_env,
    set_threads,
    write_record,
)

DIM = 384


def _fill(engine: Any, agent: str, texts: list[str], vectors: np.ndarray) -> None:
    for start in range(0, len(texts), 5000):
        stop = min(len(texts), start + 5000)
        items = [{"text": texts[i], "vector": vectors[i]} for i in range(start, stop)]
        engine.add_many(items, agent=agent)


def _phase(path: Path, queries: np.ndarray, **settings: Any) -> dict[str, Any]:
    """Open an engine, time open and the first recall of ``big``, and what it held."""
    from engramdb import MemoryEngine, Settings
    from engramdb.embeddings import HashingEmbedder

    gc.collect()
    rss0 = rss_bytes()
    t = time.perf_counter()
    engine = MemoryEngine.open(
        path, embedder=HashingEmbedder(dim=DIM), settings=Settings(**settings)
    )
    open_s = time.perf_counter() - t
    try:
        t = time.perf_counter()
        engine.recall(queries[0], agent="big", k=10, record_access=False)
        first_s = time.perf_counter() - t
        rss1 = rss_bytes()
        warm = []
        answers = []
        for q in queries:
            t = time.perf_counter()
            hits = engine.recall(q, agent="big", k=10, record_access=False)
            warm.append(time.perf_counter() - t)
            answers.append([h.memory.id for h in hits])
        stats = engine.stats()
    finally:
        engine.close()
    view = stats.views["big"]
    return {
        "open_s": open_s,
        "first_recall_s": first_s,
        "warm": percentiles(warm, suffix="_ms"),
        "rss_delta_mb": (rss1 - rss0) / 2**20,
        "view_bytes_per_memory": view.nbytes / view.memories,
        "memories": view.memories,
        "source": view.source,
        "breadth": view.breadth,
        "recall_estimate": view.recall_estimate,
        "counts": {
            "builds": stats.builds,
            "cache_loads": stats.cache_loads,
            "catch_ups": stats.catch_ups,
            "cache_writes": stats.cache_writes,
        },
        "answers": answers,
    }


def _reloads(path: Path, queries: np.ndarray, rounds: int) -> dict[str, Any]:
    """Alternate recalls between two agents under a budget that holds one view."""
    from engramdb import MemoryEngine, Settings
    from engramdb.embeddings import HashingEmbedder

    settings = Settings(view_cache_bytes=1)
    times: dict[str, list[float]] = {"small": [], "big": []}
    with MemoryEngine.open(path, embedder=HashingEmbedder(dim=DIM), settings=settings) as engine:
        for agent in ("small", "big"):
            engine.recall(queries[0], agent=agent, k=10, record_access=False)
        for i in range(rounds):
            for agent in ("small", "big"):
                t = time.perf_counter()
                engine.recall(queries[i % len(queries)], agent=agent, k=10, record_access=False)
                times[agent].append(time.perf_counter() - t)
        stats = engine.stats()
        small_bytes = engine.stats(agent="small").views["small"]
    return {
        "small_reload": percentiles(times["small"], scale=1.0, suffix="_s"),
        "big_reload": percentiles(times["big"], scale=1.0, suffix="_s"),
        "small_view_bytes_per_memory": small_bytes.nbytes / small_bytes.memories,
        "evictions": stats.evictions,
        "cache_loads": stats.cache_loads,
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=100_000)
    parser.add_argument("--small", type=parse_size, default=10_000)
    parser.add_argument("--added", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--exact-threshold", type=int, default=None)
    add_common_args(parser, threads=1, cache=True)
    args = parser.parse_args(argv)
    set_offline_env(args.threads)
    threads = set_threads(args.threads)
    from engramdb import MemoryEngine, Settings
    from engramdb.embeddings import HashingEmbedder

    n, small, added = args.size, args.small, args.added
    total = n + small + added
    texts = generated_sentences(total, seed=args.seed)
    vectors = np.asarray(cached_synthetic(total, seed=args.seed, stream=0, cache_dir=args.cache))
    queries = np.asarray(
        cached_synthetic(args.queries, seed=args.seed, stream=1, cache_dir=args.cache)
    )
    extra = {} if args.exact_threshold is None else {"exact_threshold": args.exact_threshold}
    phases: dict[str, Any] = {}
    with scratch_dir(args.work, "cold-start-") as work:
        path = work / "store"
        t = time.perf_counter()
        with MemoryEngine.open(
            path, embedder=HashingEmbedder(dim=DIM), settings=Settings(index_cache=False)
        ) as engine:
            _fill(engine, "big", texts[:n], vectors[:n])
            _fill(engine, "small", texts[n : n + small], vectors[n : n + small])
            engine.compact()
        fill_s = time.perf_counter() - t
        phases["no cache"] = _phase(path, queries, index_cache=False, **extra)
        phases["cache written"] = _phase(path, queries, **extra)
        phases["fresh cache"] = _phase(path, queries, **extra)
        with MemoryEngine.open(
            path, embedder=HashingEmbedder(dim=DIM), settings=Settings(index_cache=False, **extra)
        ) as engine:
            _fill(engine, "big", texts[n + small :], vectors[n + small :])
        phases["stale cache"] = _phase(path, queries, **extra)
        reloads = _reloads(path, queries, args.rounds)
    same = phases["fresh cache"]["answers"] == phases["cache written"]["answers"]
    for phase in phases.values():
        phase.pop("answers")
    base = phases["no cache"]["open_s"] + phases["no cache"]["first_recall_s"]
    rows = []
    for name, p in phases.items():
        cold = p["open_s"] + p["first_recall_s"]
        rows.append(
            [
                name,
                p["memories"],
                p["source"],
                p["open_s"],
                p["first_recall_s"],
                base / cold,
                p["warm"]["p50_ms"],
                p["view_bytes_per_memory"],
            ]
        )
    table = markdown_table(
        [
            "phase",
            "memories",
            "view from",
            "open s",
            "first recall s",
            "speed-up vs no cache",
            "warm p50 ms",
            "view bytes/memory",
        ],
        rows,
    )
    table += (
        f"\nFresh-cache answers identical to the cache-writing run's: {same}. "
        f"Store filled in {fill_s:.1f} s. Resident memory added by the first recall "
        f"(no cache): {phases['no cache']['rss_delta_mb']:.0f} MB.\n\n"
        + markdown_table(
            ["evicted agent", "memories", "reload p50 s", "reload max s"],
            [
                ["small", small, reloads["small_reload"]["p50_s"], max_of(reloads["small_reload"])],
                ["big", n + added, reloads["big_reload"]["p50_s"], max_of(reloads["big_reload"])],
            ],
        )
        + f"\n{reloads['evictions']} evictions; small view "
        f"{reloads['small_view_bytes_per_memory']:.0f} bytes/memory.\n"
    )
    print(table)
    figures = {"fill_s": fill_s, "phases": phases, "reloads": reloads, "identical": same}
    return write_record(
        "cold_start",
        params=vars(args),
        threads=threads,
        figures=figures,
        table=table,
        out_dir=args.out,
    )


def max_of(p: dict[str, float]) -> float:
    """The largest of the percentiles reported (p99 of few samples is near the max)."""
    return p["p99_s"]


if __name__ == "__main__":
    main()
