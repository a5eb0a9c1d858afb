"""One memory at a time: latency, disk, files and RSS of single ``add`` and ``update`` calls.

Usage:
    python benchmarks/single_writes.py [--adds 20000] [--updates 2000] [--policies new,old]
                                       [--every 500] [--out DIR] [--work DIR] [--seed 0]
    python benchmarks/single_writes.py --adds 300 --updates 30 --every 100 --out /tmp/r  # smoke

An agent that remembers one thing at a time calls ``engine.add()`` once per memory
(one LanceDB commit each), then ``engine.update(id, importance=...)`` on random
memories. Each policy runs in its own process (so RSS is its own), on the hashing
embedder (embedding is not what is measured), with seeded texts:

- ``new``: the store as it is: compaction in size tiers (``MemoryTable.compact``),
  superseded versions kept ``Settings.version_retention`` (10 s), capped LanceDB caches.
- ``old``: the policy before it, reproduced here: lancedb's ``optimize()`` (which
  compacts to 1M-row fragments, so rewrites the whole table below that) with
  10-minute retention (stopping short of the oldest checkpoint), uncapped caches.

Reported per policy: add and update latency (p50/p95/p99/max, ms, and the largest
stall in each quarter of the adds), disk and file count under ``lance/`` at the end
and at their peak, the live size (the same data compacted into one version), and
RSS at the start and end. Sampling (a walk over the files) is outside the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    add_common_args,
    markdown_table,
    percentiles,
    rss_bytes,
    scratch_dir,
    set_threads,
    write_record,
)

POLICIES = ("new", "old")
THREADS = 1
WORDS = (
    "user prefers window seat flight hotel booking meeting tuesday coffee tea budget "
    "project deadline report python bug release customer invoice travel paris london "
    "weather rain sunny morning evening dinner lunch allergy peanut vegetarian music"
).split()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--adds", type=int, default=20_000, help="single add() calls")
    p.add_argument("--updates", type=int, default=2_000, help="single update() calls after")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated: new, old")
    p.add_argument("--every", type=int, default=500, help="sample disk and RSS every N adds")
    p.add_argument("--child", help=argparse.SUPPRESS)  # run one policy, print its JSON
    add_common_args(p)
    return p.parse_args(argv)


def old_policy() -> type:
    """A MemoryTable with the maintenance it had before the tiered compaction."""
    import lancedb

    from engramdb.store.table import TABLE, MemoryTable

    class OldPolicy(MemoryTable):
        def __init__(self, root: Path, dim: int, **kwargs: Any) -> None:
            super().__init__(root, dim, **kwargs)
            self.retention = timedelta(minutes=10)
            where = self.root.path  # the benchmark's stores are local directories
            self._db = lancedb.connect(str(where / "lance"))  # no Session: uncapped caches
            self.table = self._db.open_table(TABLE)

        def compact(self) -> None:
            horizon = self.retention
            tagged = set(self.tags().values())
            if tagged:
                stamps = self.version_times()
                oldest = min(stamps[v] for v in tagged if v in stamps)
                horizon = max(horizon, datetime.now(UTC) - oldest + timedelta(minutes=1))
            self.table.optimize(cleanup_older_than=horizon)

    return OldPolicy


def disk(path: Path) -> tuple[int, int]:
    """Bytes allocated and files under ``path``."""
    size = files = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            try:
                size += os.stat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:  # removed by a cleanup meanwhile
                continue
            files += 1
    return size, files


def run_policy(policy: str, adds: int, updates: int, every: int, root: Path, seed: int) -> dict:
    """Single adds, then single updates, on a fresh store; the figures of one policy."""
    import engramdb.store.opening as opening
    from engramdb import MemoryEngine
    from engramdb.store.table import MemoryTable

    if policy == "old":
        opening.MemoryTable = old_policy()  # type: ignore[misc]
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(adds)]
    rss_start = rss_bytes()
    samples: list[dict[str, float]] = []

    def sample(phase: str, i: int) -> None:
        size, files = disk(root / "lance")
        samples.append({"phase": phase, "op": i, "mb": size / 2**20, "files": files,
                        "rss_mb": rss_bytes() / 2**20})  # fmt: skip

    engine = MemoryEngine.open(root, embedder="hashing")
    engine.add("warm-up", agent="warm")  # first-commit costs out of the timings
    add_s, ids = [], []
    start = time.perf_counter()
    for i, text in enumerate(texts):
        t0 = time.perf_counter()
        ids.append(engine.add(text, agent="bot", metadata={"i": i}).id)
        add_s.append(time.perf_counter() - t0)
        if (i + 1) % every == 0:
            sample("add", i + 1)
    update_s = []
    for j in range(updates):
        mid = rng.choice(ids)
        t0 = time.perf_counter()
        engine.update(mid, importance=rng.random())
        update_s.append(time.perf_counter() - t0)
        if (j + 1) % max(1, every // 10) == 0:
            sample("update", j + 1)
    wall = time.perf_counter() - start
    size, files = disk(root / "lance")
    rows = engine.store.count()
    rss_end = rss_bytes()
    dim = engine.embedder.dim
    engine.close()
    live = MemoryTable(root, dim)
    live.table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
    live_size, _ = disk(root / "lance")
    quarters = np.array_split(np.asarray(add_s) * 1e3, 4)
    return {
        "policy": policy,
        "rows": rows,
        "wall_s": wall,
        "add_ms": percentiles(add_s, suffix="_ms") | {"max_ms": max(add_s) * 1e3},
        "update_ms": percentiles(update_s, suffix="_ms") | {"max_ms": max(update_s or [0]) * 1e3},
        "add_stall_ms_by_quarter": [float(q.max()) if len(q) else 0.0 for q in quarters],
        "disk_mb_end": size / 2**20,
        "disk_mb_peak": max([s["mb"] for s in samples] + [size / 2**20]),
        "files_end": files,
        "files_peak": max([s["files"] for s in samples] + [files]),
        "live_mb": live_size / 2**20,
        "rss_mb_start": rss_start / 2**20,
        "rss_mb_end": rss_end / 2**20,
        "rss_mb_peak": max([s["rss_mb"] for s in samples] + [rss_end / 2**20]),
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> Path | None:
    args = parse_args(argv)
    threads = set_threads(THREADS, arrow=True)
    if args.child:
        root = Path(args.child)
        figures = run_policy(args.policies, args.adds, args.updates, args.every, root, args.seed)
        print(json.dumps(figures))
        return None
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = set(policies) - set(POLICIES)
    if unknown:
        raise SystemExit(f"unknown policies {sorted(unknown)}; use {', '.join(POLICIES)}")
    results: dict[str, dict] = {}
    with scratch_dir(args.work, "engramdb-single-writes-") as work:
        for policy in policies:
            cmd = [sys.executable, __file__, "--child", str(work / policy), "--policies", policy]
            cmd += ["--adds", str(args.adds), "--updates", str(args.updates)]
            cmd += ["--every", str(args.every), "--seed", str(args.seed)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[policy] = json.loads(out.strip().splitlines()[-1])
            print(f"{policy}: {results[policy]['wall_s']:.0f} s", file=sys.stderr)
    headers = ["policy", "add ms p50 / p99 / max", "largest add stall per quarter, ms",
               "update ms p50 / p99 / max", "disk MB end (peak)", "live MB",
               "files end (peak)", "RSS MB start -> end (peak)", "wall s"]  # fmt: skip
    rows = []
    for name, r in results.items():
        a, u = r["add_ms"], r["update_ms"]
        rows.append([
            name,
            f"{a['p50_ms']:.1f} / {a['p99_ms']:.0f} / {a['max_ms']:,.0f}",
            ", ".join(f"{x:,.0f}" for x in r["add_stall_ms_by_quarter"]),
            f"{u['p50_ms']:.1f} / {u['p99_ms']:.0f} / {u['max_ms']:,.0f}",
            f"{r['disk_mb_end']:,.1f} ({r['disk_mb_peak']:,.1f})",
            r["live_mb"],
            f"{r['files_end']:,} ({r['files_peak']:,})",
            f"{r['rss_mb_start']:,.0f} -> {r['rss_mb_end']:,.0f} ({r['rss_mb_peak']:,.0f})",
            r["wall_s"],
        ])  # fmt: skip
    table = markdown_table(headers, rows)
    print(table)
    params = {"adds": args.adds, "updates": args.updates, "every": args.every,
              "seed": args.seed, "policies": policies, "embedder": "hashing"}  # fmt: skip
    return write_record(
        "single_writes", params=params, threads=threads, figures=results, table=table,
        out_dir=args.out,
    )  # fmt: skip


if __name__ == "__main__":
    main()
