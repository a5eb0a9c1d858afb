"""Hierarchy benchmark: Poincaré reconstruction and hyperbolic k-NN recall.

Usage::

    python benchmarks/hierarchy.py CLOSURE.csv [--dims 2 5 10] [--epochs N] [--balance B]
        [--threads 2] [--out benchmarks/results] [--recall-sizes 10000 100000]
        [--recall-dims 16 384] [--queries 1000] [--seed 0] [--skip-recall]
        [--engine-sizes 10000 100000] [--work DIR]

    # only part 3 (an empty --dims skips the training of part 1):
    python benchmarks/hierarchy.py CLOSURE.csv --dims --skip-recall \
        --engine-sizes 10000 100000

``CLOSURE.csv`` is a transitive closure with columns ``id1,id2,weight`` where
``id1`` is the hyponym (for example WordNet's mammal closure of Nickel & Kiela).

Part 1 trains :func:`~engramdb.hyperbolic.fit_poincare` and its Euclidean twin at
each dimension with the library defaults and reports the reconstruction mean
rank and MAP (:func:`~engramdb.hyperbolic.reconstruction_metrics`) and the
training time.

Part 2 builds seeded synthetic hierarchies (a random recursive tree; each child
steps 0.2-0.5 further from the origin than its parent, in a direction jittered
from its parent's, so points sit at distances 0-~10 from the origin clustered by
branch, the deepest ~1e-4 from the boundary) at each of ``--recall-dims`` (16, a
trained hierarchy's size; 384, the dimension of the engine's points, which take
their direction from MiniLM text embeddings) and measures
:class:`PoincareHNSWIndex` against exact search (:class:`PoincareFlatIndex`):
recall@10 and single-query latency (p50, p95, p99; warm-up excluded), at the
cheapest ``(candidates, efSearch)`` of a ladder whose recall@10 reaches 0.99.
The peer is FAISS ``IndexHNSWFlat`` (M=32, inner product) on the normalised
tangent vectors of the same points, with efSearch the smallest of 16, 32, ...,
512 whose recall@10 against exact inner-product search reaches 0.99, so the two
are compared at equal recall; the latency ratio is p95(Poincaré HNSW) /
p95(Euclidean HNSW). The ``mips`` method (augmented
hyperboloid vectors) is measured at the smallest size for comparison.

Part 3 (``--engine-sizes``, off by default) measures recall by vector end to end
through :class:`~engramdb.MemoryEngine` (no model: bring-your-own 384-d vectors
from ``common.synthetic_vectors``, clustered like sentence embeddings). The peer
is a Euclidean store with ``index="hnsw"`` and plain ``recall(vector, k=10)``;
against it, a Poincaré store of the same vectors under a seeded random forest of
parent links (5-10 children each) with ``index="hnsw"`` and
``recall(vector, k=10, rank="distance")``. That store reopened with
``index="flat"`` gives the exact answers for its recall@10 (the peer's is
against exact inner-product search). Reported: p50/p95/p99 per query (one
query thread, ``record_access=False``, warm-up excluded), the p95 ratio
Poincaré/Euclidean, recall@10, ingest time, the first recall (which builds the
Poincaré index), and recall right after each of a few writes (which updates it).

Each run writes one JSON record and one Markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from engramdb.hyperbolic import expmap0, fit_euclidean, fit_poincare, reconstruction_metrics
from engramdb.hyperbolic.index import PoincareFlatIndex, PoincareHNSWIndex

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common, the shared helpers
import common

K = 10
WARMUP_QUERIES = 50
EUCLIDEAN_EF_LADDER = (16, 32, 64, 128, 256, 512)
# (candidates per pass, efSearch) for the Poincaré index, cheapest first.
POINCARE_LADDER = ((16, 16), (20, 32), (40, 64), (80, 128), (160, 256))


def read_closure(path: Path) -> list[tuple[str, str]]:
    """``(id1, id2)`` pairs of a closure CSV with an ``id1,id2[,weight]`` header."""
    with path.open(newline="") as fh:
        return [(row["id1"], row["id2"]) for row in csv.DictReader(fh)]


def synthetic_hierarchy(n: int, dim: int, seed: int) -> NDArray[np.float64]:
    """``n`` ball points of a random hierarchy (see the module docstring)."""
    rng = np.random.default_rng(seed)
    parent = np.zeros(n, dtype=np.int64)
    parent[1:] = (rng.random(n - 1) * np.arange(1, n)).astype(np.int64)
    radius = np.zeros(n)
    direction = np.zeros((n, dim))
    direction[0] = rng.normal(size=dim)
    steps = rng.uniform(0.2, 0.5, size=n)
    noise = rng.normal(size=(n, dim)) * 0.5 / np.sqrt(dim)
    for i in range(1, n):  # parents precede children, so one pass suffices
        p = parent[i]
        radius[i] = radius[p] + steps[i]
        d = direction[p] + noise[i] / (1.0 + 0.3 * radius[p]) if p else rng.normal(size=dim)
        direction[i] = d / np.linalg.norm(d)
    # expmap0 of v lands at distance 2|v| from the origin.
    return np.asarray(expmap0(direction * (radius / 2.0)[:, None], c=1.0))


def time_queries(search: Callable[[NDArray[Any]], object], queries: NDArray[Any]) -> list[float]:
    """Seconds per single-query ``search``, after ``WARMUP_QUERIES`` untimed ones."""
    return common.timed(lambda q: search(q[None, :]), queries, warmup=queries[:WARMUP_QUERIES])


def latency_ms(samples: list[float]) -> dict[str, float]:
    """``p50_ms``, ``p95_ms``, ``p99_ms``, ``mean_ms`` and ``n``: this record's keys."""
    return common.percentiles(samples, suffix="_ms")


def euclidean_peer(
    data: NDArray[np.float64], queries: NDArray[np.float64]
) -> dict[str, float | int]:
    """IndexHNSWFlat (M=32, inner product) at the smallest efSearch with recall >= 0.99."""

    def unit(v: NDArray[np.float64]) -> NDArray[np.float32]:
        norms = np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(v / norms, dtype=np.float32)

    x, q = unit(data), unit(queries)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, truth = exact.search(q, K)
    index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    t0 = time.perf_counter()
    index.add(x)
    build = time.perf_counter() - t0
    rec = 0.0
    for ef in EUCLIDEAN_EF_LADDER:
        index.hnsw.efSearch = ef
        rec = common.recall_at_k(index.search(q, K)[1], truth, K)
        if rec >= 0.99:
            break
    lat = time_queries(lambda v: index.search(v, K), q)
    t0 = time.perf_counter()
    index.search(q, K)
    batch_ms = (time.perf_counter() - t0) / len(q) * 1e3
    return {
        "ef_search": ef,
        "recall_at_10": rec,
        "build_s": build,
        "batch_ms_per_query": batch_ms,
        **latency_ms(lat),
    }


def recall_benchmark(n: int, dim: int, n_queries: int, seed: int, mips: bool) -> dict[str, Any]:
    points = synthetic_hierarchy(n + n_queries, dim, seed)
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(n + n_queries)
    data, queries = points[order[:n]], points[order[n:]]
    ids = np.arange(n, dtype=np.int64)
    flat = PoincareFlatIndex(dim)
    flat.add(ids, data)
    t0 = time.perf_counter()
    truth = flat.search(queries, K).ids
    exact_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "n": n,
        "dim": dim,
        "queries": n_queries,
        "max_norm": float(np.linalg.norm(data, axis=1).max()),
        "exact_batch_ms_per_query": exact_s / n_queries * 1e3,
    }
    for method in ("conformal", "mips") if mips else ("conformal",):
        index = PoincareHNSWIndex(dim, method=method)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        index.add(ids, data)
        build = time.perf_counter() - t0
        # Like the peer: the cheapest setting of the ladder whose recall reaches 0.99.
        for candidates, ef in POINCARE_LADDER:
            index.candidates, index.ef_search = candidates, ef
            t0 = time.perf_counter()
            rec = common.recall_at_k(index.search(queries, K).ids, truth, K)
            batch_ms = (time.perf_counter() - t0) / n_queries * 1e3
            if rec >= 0.99:
                break
        lat = time_queries(lambda v, ix=index: ix.search(v, K), queries)
        out[f"poincare_hnsw_{method}"] = {
            "recall_at_10": rec,
            "build_s": build,
            "ef_search": index.ef_search,
            "candidates": index.candidates,
            "batch_ms_per_query": batch_ms,
            **latency_ms(lat),
        }
    # The peer indexes the same hierarchy, as directions in the tangent space.
    peer = euclidean_peer(data, queries)
    out["euclidean_hnsw"] = peer
    ours = out["poincare_hnsw_conformal"]
    out["p95_ratio"] = ours["p95_ms"] / peer["p95_ms"]
    out["p50_ratio"] = ours["p50_ms"] / peer["p50_ms"]
    out["batch_ratio"] = ours["batch_ms_per_query"] / peer["batch_ms_per_query"]
    return out


# -- part 3: end to end through the engine ----------------------------------------------

ENGINE_AGENT = "bench"
ENGINE_BATCH = 1000
ENGINE_WRITES = 20
"""Writes (a child under a random memory) followed by a recall, timed after ingest."""


def tree_parents(n: int, seed: int, branching: tuple[int, int] = (5, 10)) -> NDArray[np.int64]:
    """Parent row of each of ``n`` memories (-1 for a root) in a seeded random forest.

    Breadth first from ``max(1, n // 10000)`` roots, each memory taking 5 to 10
    children until ``n`` are placed, so parents precede children and depth
    grows with ``log n`` (levels 0-5 at 100k, most memories leaves).
    """
    rng = np.random.default_rng([seed, 53])
    roots = max(1, n // 10_000)
    parent = np.full(n, -1, dtype=np.int64)
    nxt, node = roots, 0
    while nxt < n:
        take = min(int(rng.integers(branching[0], branching[1] + 1)), n - nxt)
        parent[nxt : nxt + take] = node
        nxt, node = nxt + take, node + 1
    return parent


def _ingest(
    engine: Any, vectors: NDArray[np.float32], parent: NDArray[np.int64] | None
) -> list[str]:
    """Bring-your-own-vector ``add_many`` in batches; each batch's parents already stored."""
    engine.count(agent=ENGINE_AGENT)  # load the view: parents are then looked up in memory
    ids: list[str] = []
    while len(ids) < len(vectors):
        start = len(ids)
        stop = min(start + ENGINE_BATCH, len(vectors))
        if parent is not None:  # stop the batch at the first child of an unstored parent
            late = np.flatnonzero(parent[start:stop] >= start)
            stop = start + int(late[0]) if len(late) else stop
        items = [
            {"text": f"memory {i}", "vector": vectors[i]}
            | ({"parent": ids[parent[i]]} if parent is not None and parent[i] >= 0 else {})
            for i in range(start, stop)
        ]
        ids += [m.id for m in engine.add_many(items, agent=ENGINE_AGENT)]
    return ids


def _engine_queries(
    engine: Any,
    queries: NDArray[np.float32],
    row_of: dict[str, int],
    **recall: Any,
) -> tuple[dict[str, float], list[list[int]]]:
    """Latency of single-query recall by vector (warm-up first) and the rows found."""
    found: list[list[int]] = [[] for _ in range(len(queries) - WARMUP_QUERIES)]

    def search(i: int) -> None:
        hits = engine.recall(queries[i], agent=ENGINE_AGENT, k=K, record_access=False, **recall)
        if i >= WARMUP_QUERIES:
            found[i - WARMUP_QUERIES] = [row_of[h.memory.id] for h in hits]

    samples = common.timed(
        search, range(WARMUP_QUERIES, len(queries)), warmup=range(WARMUP_QUERIES)
    )
    return common.percentiles(samples), found


def _writes(
    engine: Any,
    queries: NDArray[np.float32],
    ids: list[str],
    row_of: dict[str, int],
    rng: np.random.Generator,
    **recall: Any,
) -> dict[str, Any]:
    """Add a memory (under a random one when ``rank`` is given) then recall; time both."""
    adds, recalls = [], []
    for j in range(ENGINE_WRITES):
        item: dict[str, Any] = {"text": f"write {j}", "vector": queries[j]}
        if recall.get("rank") == "distance":
            item["parent"] = ids[int(rng.integers(len(ids)))]
        t0 = time.perf_counter()
        (memory,) = engine.add_many([item], agent=ENGINE_AGENT)
        t1 = time.perf_counter()
        engine.recall(queries[-1 - j], agent=ENGINE_AGENT, k=K, record_access=False, **recall)
        t2 = time.perf_counter()
        row_of[memory.id] = len(row_of)
        adds.append(t1 - t0)
        recalls.append(t2 - t1)
    return {"add": common.percentiles(adds), "recall_after_add": common.percentiles(recalls)}


def engine_benchmark(n: int, n_queries: int, seed: int, work: Path) -> dict[str, Any]:
    """Recall by vector through ``MemoryEngine``: Euclidean HNSW vs Poincaré rank='distance'.

    Both stores hold the same ``n`` clustered 384-d vectors (``common.synthetic_vectors``);
    the Poincaré one also a random forest of parent links (:func:`tree_parents`). Both
    use ``index="hnsw"``; the Poincaré store is then reopened with ``index="flat"``,
    whose ``rank="distance"`` answers are exact, for its recall@10. ``ENGINE_WRITES``
    writes (each followed by one recall) run before the timed queries, so the
    Poincaré figures are those of an index updated in place, as in use.
    """
    from engramdb import MemoryEngine
    from engramdb.config import Settings

    base = common.synthetic_vectors(n, seed=seed, stream=0)
    queries = common.synthetic_vectors(n_queries + WARMUP_QUERIES, seed=seed, stream=1)
    parent = tree_parents(n, seed)
    settings = Settings(threads=1)
    rng = np.random.default_rng([seed, 59])
    out: dict[str, Any] = {"n": n, "dim": base.shape[1], "queries": n_queries}
    levels = np.zeros(n, dtype=np.int64)
    for i in np.flatnonzero(parent >= 0):  # parents precede children
        levels[i] = levels[parent[i]] + 1
    out["tree"] = {
        "roots": int((parent < 0).sum()),
        "max_level": int(levels.max()),
        "leaves": int(n - len(np.unique(parent[parent >= 0]))),
    }

    def store(name: str, space: str, index: str) -> Any:
        return MemoryEngine.open(
            work / f"{name}-{n}",
            embedder=f"hashing-{base.shape[1]}",
            space=space,
            index=index,
            settings=settings,
        )

    runs: dict[str, tuple[str, str, NDArray[np.int64] | None, dict[str, Any]]] = {
        "euclidean_hnsw": ("euclidean", "hnsw", None, {}),
        "poincare_hnsw": ("poincare", "hnsw", parent, {"rank": "distance"}),
    }
    found: dict[str, list[list[int]]] = {}
    rows: dict[str, dict[str, int]] = {}
    for key, (space, index, links, recall) in runs.items():
        engine = store(key, space, index)
        t0 = time.perf_counter()
        ids = _ingest(engine, base, links)
        ingest_s = time.perf_counter() - t0
        row_of = rows[key] = {mid: i for i, mid in enumerate(ids)}
        t0 = time.perf_counter()
        engine.recall(queries[0], agent=ENGINE_AGENT, k=K, record_access=False, **recall)
        first_s = time.perf_counter() - t0
        writes = _writes(engine, queries, ids, row_of, rng, **recall)
        lat, found[key] = _engine_queries(engine, queries, row_of, **recall)
        res: dict[str, Any] = {
            "ingest_s": ingest_s,
            "first_recall_s": first_s,
            "writes": writes,
            **lat,
        }
        ball = engine._views.get(ENGINE_AGENT).ball_index
        if ball is not None:  # the Poincaré index: built once, then updated in place
            res["ball_index"] = {
                "builds": ball.builds,
                "moved": ball.moved,
                "approximate": ball.approximate,
            }
        engine.close()
        out[key] = res
    # Exact answers: inner product for the Euclidean store (the written memories
    # are the first queries), the flat Poincaré index for the Poincaré one.
    everything = np.concatenate([base, queries[:ENGINE_WRITES]])
    truth = common.exact_topk(everything, queries[WARMUP_QUERIES:], K)
    out["euclidean_hnsw"]["recall_at_10"] = common.recall_at_k(found["euclidean_hnsw"], truth, K)
    engine = store("poincare_hnsw", "poincare", "flat")
    lat, exact = _engine_queries(engine, queries, rows["poincare_hnsw"], rank="distance")
    engine.close()
    out["poincare_flat"] = lat
    out["poincare_hnsw"]["recall_at_10"] = common.recall_at_k(
        found["poincare_hnsw"], np.asarray(exact), K
    )
    out["p95_ratio"] = out["poincare_hnsw"]["p95"] / out["euclidean_hnsw"]["p95"]
    out["p50_ratio"] = out["poincare_hnsw"]["p50"] / out["euclidean_hnsw"]["p50"]
    return out


def engine_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The engine section's table: latency per query, recall@10, the p95 ratio."""
    lines = [
        "",
        "End to end through `MemoryEngine.recall(vector, k=10)` (record_access=False), "
        "one query thread:",
        "",
        "| n | store, recall | recall@10 | p50 ms | p95 ms | p99 ms | ingest s | "
        f"first recall s | recall after a write, p50 ms ({ENGINE_WRITES} writes) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in rows:
        for key, label in (
            ("euclidean_hnsw", "Euclidean, index='hnsw'"),
            ("poincare_hnsw", "Poincaré, index='hnsw', rank='distance'"),
            ("poincare_flat", "Poincaré, index='flat', rank='distance' (exact)"),
        ):
            r = res[key]
            rec = f"{r['recall_at_10']:.4f}" if "recall_at_10" in r else "1 (reference)"
            writes = r.get("writes", {}).get("recall_after_add", {}).get("p50")
            build = (
                f"{r['ingest_s']:.1f} | {r['first_recall_s']:.2f} | {writes:.2f}"
                if "ingest_s" in r
                else "- | - | -"
            )
            lines.append(
                f"| {res['n']} | {label} | {rec} | {r['p50']:.3f} | {r['p95']:.3f} | "
                f"{r['p99']:.3f} | {build} |"
            )
        lines.append(
            f"| {res['n']} | ratio Poincaré HNSW / Euclidean HNSW (p50, p95) | | "
            f"{res['p50_ratio']:.1f} | {res['p95_ratio']:.1f} | | | | |"
        )
    return "\n".join(lines) + "\n"


def reconstruction_benchmark(
    edges: list[tuple[str, str]],
    dims: Sequence[int],
    epochs: int | None,
    seed: int,
    balance: float | None = None,
) -> list[dict[str, Any]]:
    rows = []
    extra = {} if balance is None else {"balance": balance}
    for dim in dims:
        for geometry, fit in (("poincare", fit_poincare), ("euclidean", fit_euclidean)):
            t0 = time.perf_counter()
            emb = fit(edges, dim, epochs=epochs, seed=seed, **extra)
            train_s = time.perf_counter() - t0
            mean_rank, mean_ap = reconstruction_metrics(edges, emb, distance=geometry)  # type: ignore[arg-type]
            rows.append(
                {
                    "geometry": geometry,
                    "dim": dim,
                    "mean_rank": mean_rank,
                    "map": mean_ap,
                    "train_s": train_s,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(params: dict[str, Any], figures: dict[str, Any]) -> str:
    """The reconstruction and recall tables (the run record's header says the rest)."""
    closure = figures["closure"]
    lines = [
        f"closure `{params['closure']}`: {closure['nodes']} nodes, {closure['edges']} edges",
        "",
        "| geometry | dim | mean rank | MAP | train s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {row['geometry']} | {row['dim']} | {row['mean_rank']:.3f} | "
        f"{row['map']:.4f} | {row['train_s']:.1f} |"
        for row in figures["reconstruction"]
    )
    if figures["recall"]:
        lines += [
            "",
            "| n | dim | index | recall@10 | p50 ms | p95 ms | p99 ms | batch ms/q | build s |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for res in figures["recall"]:
            for key, label in (
                ("poincare_hnsw_conformal", "Poincaré HNSW (conformal)"),
                ("poincare_hnsw_mips", "Poincaré HNSW (mips)"),
                ("euclidean_hnsw", "Euclidean HNSW, ef={ef}"),
            ):
                if key not in res:
                    continue
                r = res[key]
                lines.append(
                    f"| {res['n']} | {res['dim']} | {label.format(ef=r.get('ef_search'))} | "
                    f"{r['recall_at_10']:.4f} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | "
                    f"{r['p99_ms']:.3f} | {r['batch_ms_per_query']:.3f} | {r['build_s']:.1f} |"
                )
            lines.append(
                f"| {res['n']} | | ratio Poincaré/Euclidean (p50, p95, batch) | | "
                f"{res['p50_ratio']:.1f} | {res['p95_ratio']:.1f} | | {res['batch_ratio']:.1f} | |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("closure", type=Path, help="closure CSV with id1,id2[,weight]")
    parser.add_argument("--dims", type=int, nargs="*", default=[2, 5, 10])
    parser.add_argument("--epochs", type=int, default=None, help="default: the library's")
    parser.add_argument(
        "--balance",
        type=float,
        default=None,
        help="fit_poincare's pair balance, 0 (every pair alike) to 1 (every node alike); "
        "default: the library's",
    )
    parser.add_argument("--recall-sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--recall-dims", type=int, nargs="+", default=[16, 384])
    parser.add_argument("--queries", type=int, default=1000)
    common.add_common_args(parser, threads=2, threads_help="torch and FAISS threads")
    parser.add_argument("--skip-recall", action="store_true")
    parser.add_argument(
        "--engine-sizes",
        type=int,
        nargs="*",
        default=[],
        help="part 3, end to end through the engine, at these sizes (default: off)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the record it wrote (``common.write_record``)."""
    args = parse_args(argv)
    threads = common.set_threads(args.threads, torch=args.threads)
    edges = read_closure(args.closure)
    params = {
        "closure": str(args.closure),
        "dims": args.dims,
        "epochs": args.epochs,
        "balance": args.balance,
        "seed": args.seed,
        "recall_sizes": [] if args.skip_recall else args.recall_sizes,
        "recall_dims": args.recall_dims,
        "queries": args.queries,
        "engine_sizes": args.engine_sizes,
        "k": K,
        "warmup_queries": WARMUP_QUERIES,
    }
    figures: dict[str, Any] = {
        "closure": {"edges": len(edges), "nodes": len({n for e in edges for n in e})},
        "reconstruction": reconstruction_benchmark(
            edges, args.dims, args.epochs, args.seed, args.balance
        ),
        "recall": [],
        "engine": [],
    }
    if not args.skip_recall:
        smallest = min(args.recall_sizes)
        for dim in args.recall_dims:
            for n in args.recall_sizes:
                res = recall_benchmark(n, dim, args.queries, args.seed, n == smallest)
                print(json.dumps(res), flush=True)
                figures["recall"].append(res)
    if args.engine_sizes:
        with common.scratch_dir(args.work, "engramdb-hierarchy-") as work:
            for n in args.engine_sizes:
                res = engine_benchmark(n, args.queries, args.seed, Path(work))
                print(json.dumps(res), flush=True)
                figures["engine"].append(res)
    table = markdown(params, figures)
    table += engine_markdown(figures["engine"]) if figures["engine"] else ""
    path = common.write_record(
        "hierarchy", params=params, threads=threads, figures=figures, table=table, out_dir=args.out
    )
    print(table)
    record: dict[str, Any] = json.loads(path.read_text())
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
