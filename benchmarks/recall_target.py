"""The recall target: what tuning HNSW's efSearch costs and what it buys, by data set and size.

Usage:
    python benchmarks/recall_target.py [--sizes 10k,100k] [--data low,high]
                                       [--target 0.95] [--queries 300]
                                       [--out DIR] [--cache DIR] [--threads 1]

For each data set and size, one engramdb ``HNSWIndex`` (the index ``index="auto"``
uses past ``exact_threshold``) is built with ``recall_target`` set, which tunes
``efSearch`` on vectors held out of the build. Then, on the same graph, for the
fixed efSearch used before (128) and for the tuned one: recall@10 of
``--queries`` fresh queries (another stream of the same distribution) against
exact search, and single-query latency (p50/p99, one thread). Reported: build
time, tuning time (and its share of the build), the tuning's own estimate, the
efSearch chosen (``scan``: no beam cheaper than an exact scan kept the target,
so the index scans; the estimate is then the widest beam's), recall@10 and
latency at both.

Data sets:
    low: ``common.synthetic_vectors`` (a curved 48-d manifold in 384-d, like
        sentence embeddings).
    high: 200 Gaussian clusters in 384-d, unit centres plus isotropic noise of
        standard deviation ``--noise`` (0.35) per coordinate: high intrinsic dimension.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DIM,
    add_common_args,
    cached_synthetic,
    exact_topk,
    markdown_table,
    parse_size,
    percentiles,
    recall_at_k,
    set_offline_env,
    set_threads,
    write_record,
)

FIXED_EF = 128
"""The efSearch every HNSW index used before the recall target."""


def gaussian_clusters(
    n: int,
    *,
    dim: int = DIM,
    clusters: int = 200,
    noise: float = 0.35,
    seed: int = 0,
    stream: int = 0,
) -> np.ndarray:
    """Unit vectors around ``clusters`` random unit centres with isotropic Gaussian noise.

    The centres depend on ``seed`` only; ``stream`` draws other points of the same
    distribution (queries).
    """
    centres = np.random.default_rng([seed, 0]).standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, 1 + stream])
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65_536):
        m = min(65_536, n - start)
        x = centres[rng.integers(clusters, size=m)] + noise * rng.standard_normal((m, dim))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _latency(index: object, queries: np.ndarray) -> dict[str, float]:
    search = index.search  # type: ignore[attr-defined]
    for q in queries[:20]:
        search(q[None, :], 10)
    samples = []
    for q in queries:
        t = time.perf_counter()
        search(q[None, :], 10)
        samples.append(time.perf_counter() - t)
    return percentiles(samples, suffix="_ms")


def run_one(base: np.ndarray, queries: np.ndarray, target: float) -> dict[str, object]:
    from engramdb.index.vector import HNSWIndex

    truth = exact_topk(base, queries, 10)
    t = time.perf_counter()
    index = HNSWIndex(base.shape[1], recall_target=target)
    index.add(np.arange(len(base), dtype=np.int64), np.ascontiguousarray(base))
    build_s = time.perf_counter() - t
    tuning = index.tuning
    assert tuning is not None
    out: dict[str, object] = {
        "n": len(base),
        "build_s": build_s,
        "tune_s": tuning.seconds,
        "tune_share": tuning.seconds / build_s,
        "estimate": tuning.estimate,
        "ef_tuned": tuning.breadth,
        "exhaustive": tuning.exhaustive,
        "tried": tuning.tried,
    }
    # "fixed" is the graph at efSearch 128 as before (no tuning, so never a scan).
    for name, ef, state in (("fixed", FIXED_EF, None), ("tuned", tuning.breadth, tuning)):
        index.ef_search, index.tuning = ef, state
        _, found = index.search(queries, 10)
        out[f"recall_{name}"] = recall_at_k(found, truth, 10)
        out[f"latency_{name}"] = _latency(index, queries)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k")
    parser.add_argument("--data", default="low,high")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.35)
    add_common_args(parser, threads=1, cache=True)
    args = parser.parse_args(argv)
    set_offline_env(args.threads)
    threads = set_threads(args.threads)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    results = []
    for data in args.data.split(","):
        for n in sizes:
            if data == "low":
                base = np.asarray(
                    cached_synthetic(n, seed=args.seed, stream=0, cache_dir=args.cache)
                )
                queries = np.asarray(
                    cached_synthetic(args.queries, seed=args.seed, stream=1, cache_dir=args.cache)
                )
            elif data == "high":
                base = gaussian_clusters(n, noise=args.noise, seed=args.seed)
                queries = gaussian_clusters(
                    args.queries, noise=args.noise, seed=args.seed, stream=1
                )
            else:
                raise SystemExit(f"--data {data!r} is not known; use low and/or high")
            row = run_one(base, queries, args.target) | {"data": data}
            print(row, flush=True)
            results.append(row)
    table = markdown_table(
        [
            "data",
            "n",
            "build s",
            "tune s",
            "tune/build",
            "ef tuned",
            "scan",
            "estimate",
            f"recall@10 ef {FIXED_EF}",
            "recall@10 tuned",
            f"p50 ms ef {FIXED_EF}",
            "p50 ms tuned",
            "p99 ms tuned",
        ],
        [
            [
                r["data"],
                r["n"],
                r["build_s"],
                r["tune_s"],
                r["tune_share"],
                r["ef_tuned"],
                "yes" if r["exhaustive"] else "no",
                r["estimate"],
                r["recall_fixed"],
                r["recall_tuned"],
                r["latency_fixed"]["p50_ms"],  # type: ignore[index]
                r["latency_tuned"]["p50_ms"],  # type: ignore[index]
                r["latency_tuned"]["p99_ms"],  # type: ignore[index]
            ]
            for r in results
        ],
    )
    table += f"\nRecall target {args.target}; recall@10 over {args.queries} fresh queries.\n"
    print(table)
    return write_record(
        "recall_target",
        params=vars(args),
        threads=threads,
        figures={"runs": results},
        table=table,
        out_dir=args.out,
    )


if __name__ == "__main__":
    main()
