"""Resident memory per memory of one agent's view, each way a fresh process gets it.

Usage:
    python benchmarks/resident.py [--size 100k] [--out DIR] [--work DIR] [--cache DIR]

One store holds agent ``a`` (``--size`` memories: generated sentences in sessions of
20 with synthetic 384-d vectors given directly, the hashing embedder: the latency
benchmark's low-intrinsic-dimension set). Each measurement is its own
fresh process, which imports engramdb, takes its resident set size (RSS), opens
the store, answers one recall by vector (the view is made then) and takes the RSS
again, after a garbage collection:

- **built**: the HNSW graph built from the store's rows (``index_cache=False``),
  as the latency benchmark's engramdb process does;
- **from cache**: the graph read from the index cache (written by one more
  process beforehand), the path a restarted server takes;
- each also with ``MALLOC_ARENA_MAX=2`` in the process's environment, and with
  :func:`engramdb.limit_malloc_arenas` called first thing (as ``engramdb serve``
  and ``engramdb mcp`` start): glibc gives each thread that allocates its own
  heap ("arena"), and the rows LanceDB reads on its worker threads leave those
  heaps fragmented after a build.

Raw FAISS HNSW (the same vectors, M=32) is measured the same way, built in a fresh
process, for reference. Reported in KiB (1,024 bytes): the RSS delta per memory,
the part of it that is anonymous memory (heap, not file-backed pages such as
library code the first recall runs; Linux only) and the view's own estimate
(``engine.stats()``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    add_common_args,
    anon_bytes,
    cached_synthetic,
    generated_sentences,
    markdown_table,
    parse_size,
    per_item,
    rss_bytes,
    scratch_dir,
    set_offline_env,
    set_threads,
    write_record,
)

DIM = 384
SESSION = 20
"""Memories per session, as in the latency benchmark's synthetic sets."""
RUNS = (
    ("built", False, None, 0),
    ("built, MALLOC_ARENA_MAX=2", False, "2", 0),
    ("built, limit_malloc_arenas(2) (as the servers start)", False, None, 2),
    ("from cache", True, None, 0),
    ("from cache, MALLOC_ARENA_MAX=2", True, "2", 0),
    ("from cache, limit_malloc_arenas(2)", True, None, 2),
)


def child(store: Path, cache: bool, queries: Path, exact: int | None) -> dict[str, Any]:
    """In a fresh process: the RSS a view adds (``--child``)."""
    set_threads(1)
    from engramdb import MemoryEngine, Settings
    from engramdb.embeddings import HashingEmbedder

    query = np.load(queries)[0]
    gc.collect()
    rss0, anon0 = rss_bytes(), anon_bytes()
    extra = {} if exact is None else {"exact_threshold": exact}
    engine = MemoryEngine.open(
        store, embedder=HashingEmbedder(dim=DIM), settings=Settings(index_cache=cache, **extra)
    )
    engine.recall(query, agent="a", k=10, record_access=False)
    gc.collect()
    rss1, anon1 = rss_bytes(), anon_bytes()
    stats = engine.stats()
    engine.close()
    view = stats.views["a"]
    return {
        "memories": view.memories,
        "source": view.source,
        "rss_bytes_per_memory": (rss1 - rss0) / view.memories,
        "anon_bytes_per_memory": per_item(anon0, anon1, view.memories),
        "view_estimate_bytes_per_memory": view.nbytes / view.memories,
    }


def faiss_child(vectors: Path) -> dict[str, Any]:
    """In a fresh process: the RSS raw FAISS HNSW adds, built from the same (unit) vectors."""
    set_threads(1)
    import faiss

    base = np.load(vectors).astype(np.float32)  # whole, before the baseline (a map counts)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    gc.collect()
    rss0, anon0 = rss_bytes(), anon_bytes()
    index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    index.add(base)  # in one call, as the view's graph is built
    gc.collect()
    n = index.ntotal
    return {
        "memories": n,
        "rss_bytes_per_memory": (rss_bytes() - rss0) / n,
        "anon_bytes_per_memory": per_item(anon0, anon_bytes(), n),
    }


def _spawn(
    args: list[str], arena: str | None, exact: int | None = None, cap: int = 0
) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("MALLOC_ARENA_MAX", None)
    if arena is not None:
        env["MALLOC_ARENA_MAX"] = arena
    if exact is not None:
        args = [*args, "--exact-threshold", str(exact)]
    if cap:
        args = [*args, "--limit-arenas", str(cap)]
    out = subprocess.run(
        [sys.executable, __file__, *args], env=env, check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> Path | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=100_000)
    parser.add_argument("--child", nargs=3, metavar=("STORE", "CACHE", "QUERIES"))
    parser.add_argument("--faiss-child", metavar="VECTORS")
    parser.add_argument(
        "--exact-threshold", type=int, default=None, help="below it an agent stays exact"
    )
    parser.add_argument(
        "--limit-arenas",
        type=int,
        default=0,
        help="the child calls engramdb.limit_malloc_arenas(N) first (0: not)",
    )
    add_common_args(parser, threads=1, cache=True)
    args = parser.parse_args(argv)
    if args.limit_arenas:  # first, before any thread: as the servers do
        from engramdb.allocator import limit_malloc_arenas

        limit_malloc_arenas(args.limit_arenas)
    set_offline_env(args.threads)
    if args.child:
        store, cache, queries = args.child
        print(json.dumps(child(Path(store), cache == "1", Path(queries), args.exact_threshold)))
        return None
    if args.faiss_child:
        print(json.dumps(faiss_child(Path(args.faiss_child))))
        return None
    threads = set_threads(args.threads)
    from engramdb import MemoryEngine, Settings
    from engramdb.embeddings import HashingEmbedder

    n = args.size
    texts = generated_sentences(n, seed=args.seed)
    vectors = np.asarray(cached_synthetic(n, seed=args.seed, stream=0, cache_dir=args.cache))
    figures: dict[str, Any] = {}
    with scratch_dir(args.work, "resident-") as work:
        store = work / "store"
        queries = work / "queries.npy"
        base = work / "base.npy"
        np.save(queries, cached_synthetic(4, seed=args.seed, stream=1, cache_dir=args.cache))
        np.save(base, vectors)
        print(f"filling a store with {n:,} memories", file=sys.stderr)
        with MemoryEngine.open(
            store, embedder=HashingEmbedder(dim=DIM), settings=Settings(index_cache=False)
        ) as engine:
            for start in range(0, n, 5000):
                stop = min(n, start + 5000)
                engine.add_many(
                    [
                        {"text": texts[i], "vector": vectors[i], "session": f"s{i // SESSION}"}
                        for i in range(start, stop)
                    ],
                    agent="a",
                )
            engine.compact()
        exact = args.exact_threshold
        _spawn(["--child", str(store), "1", str(queries)], None, exact)  # writes the cache
        for name, cache, arena, cap in RUNS:
            print(f"measuring: {name}", file=sys.stderr)
            figures[name] = _spawn(
                ["--child", str(store), "1" if cache else "0", str(queries)], arena, exact, cap
            )
        figures["raw FAISS HNSW, built"] = _spawn(["--faiss-child", str(base)], None)
    rows = [
        [
            name,
            f["memories"],
            f.get("source", "-"),
            f["rss_bytes_per_memory"] / 1024,
            f["anon_bytes_per_memory"] / 1024 if f.get("anon_bytes_per_memory") else "-",
            f["view_estimate_bytes_per_memory"] / 1024
            if "view_estimate_bytes_per_memory" in f
            else "-",
        ]
        for name, f in figures.items()
    ]
    table = markdown_table(
        [
            "process",
            "memories",
            "view from",
            "resident KiB / memory",
            "of it anonymous KiB",
            "view's estimate KiB",
        ],
        rows,
    )
    print(table)
    return write_record(
        "resident",
        params={"size": n, "dim": DIM, "seed": args.seed},
        threads=threads,
        figures=figures,
        table=table,
        out_dir=args.out,
    )


if __name__ == "__main__":
    main()
