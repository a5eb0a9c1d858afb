"""Snapshot benchmark: export and import time and file size per vector encoding.

For each size, one store is filled with seeded synthetic memories (384-dim unit
vectors with the structure of sentence embeddings, and memory-like short texts
with kinds, sessions, metadata, importance and dates). Then, per encoding
(float32, float16, int8):

* export time and file size (plus an encrypted float32 export);
* import time into a fresh store (no re-embedding), median of ``--repeats``
  rounds after a warm-up round; each round times the floor (below) first, then
  every encoding, after an ``os.sync()``, so peers share the machine's state;
* recall@10 agreement: the same ``--queries`` query vectors recalled on the
  original and on the restored store (both with exact search, so HNSW's own
  variance is not counted), mean fraction of top-10 ids shared.

Peers, measured in the same run on the same rows:

* naive JSON: ``json.dump`` of the records with float32 vectors as lists (what
  JSON-based tools produce), and loading it back into a fresh table (one run:
  it takes minutes at 100k, and its order of magnitude is the point);
* the floor: the same rows read from a plain Arrow IPC file and written straight
  into a fresh LanceDB table (no checks, no hashing, no decoding).

Targets (issue 6): int8 file <= 0.2x naive JSON; import of 100k memories < 2 s
and <= 1.5x the floor; recall@10 agreement after int8 restore >= 0.99.

Usage:
    python benchmarks/snapshots.py [--sizes 10k,100k] [--encodings float32,float16,int8]
        [--queries 200] [--repeats 3] [--threads 2] [--seed 0] [--out DIR] [--work DIR] [--keep]

Writes ``snapshots-<time>.json`` and ``.md`` (and ``snapshots-latest.*``) under
``benchmarks/results/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DIM,
    add_common_args,
    generated_sentences,
    markdown_table,
    parse_size,
    recall_at_k,
    scratch_dir,
    set_threads,
    synthetic_vectors,
    write_record,
)

EMBEDDER = f"hashing-{DIM}"
"""A 384-dim embedder name for the stores; vectors are given, never embedded."""
KINDS = ("episodic", "semantic", "procedural")
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10k,100k", help="memory counts, e.g. 10k,100k")
    ap.add_argument("--encodings", default="float32,float16,int8")
    ap.add_argument("--queries", type=int, default=200, help="queries for recall agreement")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    add_common_args(ap, threads=2, threads_help="Arrow, Lance, FAISS, BLAS and OpenMP threads")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    args.size_list = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    args.encoding_list = [e.strip() for e in args.encodings.split(",") if e.strip()]
    return args


# -- data ----------------------------------------------------------------------------------


def memory_items(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """``add_many`` items with given vectors: seeded texts, kinds, sessions, metadata."""
    rng = np.random.default_rng([seed, 11])
    texts = generated_sentences(n, seed=seed)
    vectors = synthetic_vectors(n, seed=seed)
    ages = rng.uniform(0, 365 * 86400, n)
    items = []
    for i in range(n):
        meta: dict[str, Any] = {"source": ["chat", "email", "tool"][i % 3]}
        if i % 5 == 0:
            meta["topic"] = f"t{int(rng.integers(50))}"
        items.append(
            {
                "text": texts[i],
                "kind": KINDS[int(rng.integers(len(KINDS)))],
                "session": f"s{int(rng.integers(200))}",
                "metadata": meta,
                "importance": round(float(rng.uniform(0.1, 0.9)), 3),
                "created_at": NOW - timedelta(seconds=float(ages[i])),
                "vector": vectors[i],
            }
        )
    return items, vectors


def build_store(path: Path, n: int, seed: int) -> Any:
    from engramdb import MemoryEngine

    engine = MemoryEngine.open(path, embedder=EMBEDDER, index="flat")
    items, _ = memory_items(n, seed)
    for start in range(0, n, 20_000):
        engine.add_many(items[start : start + 20_000], agent="bench")
    return engine


# -- peers ---------------------------------------------------------------------------------


def naive_json(rows: Any, path: Path) -> float:
    """Seconds to write the rows as a JSON list of records with float vectors."""
    t0 = time.perf_counter()
    records = rows.to_pylist()
    for r in records:
        for key in ("created_at", "updated_at", "last_accessed_at", "expires_at"):
            if r[key] is not None:
                r[key] = r[key].isoformat()
    with path.open("w") as fh:
        json.dump(records, fh)
    return time.perf_counter() - t0


def naive_json_load(path: Path, db_dir: Path, schema: Any) -> float:
    import lancedb
    import pyarrow as pa

    table = lancedb.connect(str(db_dir)).create_table("memories", schema=schema)
    t0 = time.perf_counter()
    with path.open() as fh:
        records = json.load(fh)
    for r in records:
        for key in ("created_at", "updated_at", "last_accessed_at", "expires_at"):
            if r[key] is not None:
                r[key] = datetime.fromisoformat(r[key])
    table.add(pa.Table.from_pylist(records, schema=schema))
    return time.perf_counter() - t0


def floor_import(arrow_path: Path, db_dir: Path, schema: Any) -> float:
    """Seconds to read a plain Arrow IPC file and write it into a fresh LanceDB table."""
    import lancedb
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = lancedb.connect(str(db_dir)).create_table("memories", schema=schema)
    t0 = time.perf_counter()
    with pa.memory_map(str(arrow_path)) as src:
        data = ipc.open_file(src).read_all()
    table.add(data)
    return time.perf_counter() - t0


# -- measurements --------------------------------------------------------------------------


def recall_ids(engine: Any, queries: np.ndarray, k: int) -> list[list[str]]:
    return [
        [h.memory.id for h in engine.recall(q, agent="bench", k=k, now=NOW, record_access=False)]
        for q in queries
    ]


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def run_size(n: int, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    import pyarrow.ipc as ipc

    from engramdb import MemoryEngine
    from engramdb.snapshots.io import export_snapshot, import_snapshot

    print(f"[n={n}] building the store", file=sys.stderr, flush=True)
    source = build_store(work / f"src-{n}", n, args.seed)
    queries = synthetic_vectors(args.queries, seed=args.seed, stream=1)
    truth = recall_ids(source, queries, args.k)
    rows = source.table.scan_agent("bench")
    schema = source.table.table.schema
    fresh = iter(range(10_000))

    def fresh_dir() -> Path:
        return work / f"db-{n}-{next(fresh)}"

    print(f"[n={n}] naive JSON", file=sys.stderr, flush=True)
    json_path = work / f"naive-{n}.json"
    # one run each: at 100k the naive JSON takes minutes, and its order of magnitude is the point
    json_export = naive_json(rows, json_path)
    json_bytes = json_path.stat().st_size
    json_import = naive_json_load(json_path, fresh_dir(), schema)
    json_path.unlink()
    arrow_path = work / f"plain-{n}.arrow"
    t0 = time.perf_counter()
    with ipc.new_file(str(arrow_path), rows.schema) as writer:
        writer.write_table(rows)
    arrow_export = time.perf_counter() - t0

    variants = [(f"snapshot {enc}", enc, None) for enc in args.encoding_list]
    if "float32" in args.encoding_list:
        variants.append(("snapshot float32 + AES-GCM", "float32", os.urandom(32)))
    exports: dict[str, list[float]] = {}
    files: dict[str, Any] = {}
    for label, encoding, key in variants:
        print(f"[n={n}] export {label}", file=sys.stderr, flush=True)
        path = work / f"snap-{n}-{len(files)}.egm"
        exports[label] = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            files[label] = export_snapshot(source, path, agent="bench", vectors=encoding, key=key)
            exports[label].append(time.perf_counter() - t0)

    # Imports in rounds, the floor first in each, so that peers share the machine's
    # state (load, page cache, writeback); round 0 is a warm-up and is not kept.
    floor_label = "floor: plain Arrow -> LanceDB"
    imports: dict[str, list[float]] = {floor_label: [], **{v[0]: [] for v in variants}}
    agree: dict[str, float] = {}
    for rnd in range(args.repeats + 1):
        print(f"[n={n}] import round {rnd}", file=sys.stderr, flush=True)
        os.sync()
        seconds = floor_import(arrow_path, fresh_dir(), schema)
        if rnd:
            imports[floor_label].append(seconds)
        for label, _, key in variants:
            target = fresh_dir()
            # exact search on both sides: agreement then measures the encoding, not HNSW
            restored = MemoryEngine.open(target, embedder=EMBEDDER, index="flat")
            os.sync()
            t0 = time.perf_counter()
            import_snapshot(restored, files[label].path, key=key)
            if rnd:
                imports[label].append(time.perf_counter() - t0)
            if rnd == args.repeats:
                agree[label] = recall_at_k(recall_ids(restored, queries, args.k), truth, args.k)
            restored.close()
            shutil.rmtree(target)
    source.close()

    floor_s = median(imports[floor_label])
    results: list[dict[str, Any]] = [
        {"n": n, "format": "naive JSON (float32 lists)", "bytes": json_bytes,
         "export_s": json_export, "import_s": json_import, "agreement": None},
        {"n": n, "format": floor_label, "bytes": arrow_path.stat().st_size,
         "export_s": arrow_export, "import_s": floor_s, "import_runs_s": imports[floor_label],
         "agreement": None},
    ]  # fmt: skip
    for label, _, _ in variants:
        info = files[label]
        results.append(
            {
                "n": n,
                "format": label,
                "bytes": info.bytes,
                "export_s": median(exports[label]),
                "import_s": median(imports[label]),
                "import_runs_s": imports[label],
                "agreement": agree[label],
            }
        )
    for row in results:
        row["vs_json_size"] = row["bytes"] / json_bytes
        row["vs_floor_time"] = row["import_s"] / floor_s
    return results


def targets(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in results:
        if r["format"] == "snapshot int8":
            out[f"int8_size_vs_json_{r['n']}"] = {
                "value": r["vs_json_size"],
                "target": "<= 0.2",
                "met": r["vs_json_size"] <= 0.2,
            }
            out[f"int8_agreement_{r['n']}"] = {
                "value": r["agreement"],
                "target": ">= 0.99",
                "met": r["agreement"] >= 0.99,
            }
        if r["format"].startswith("snapshot") and "AES" not in r["format"] and r["n"] >= 100_000:
            enc = r["format"].split()[1]
            out[f"import_{enc}_{r['n']}_s"] = {
                "value": r["import_s"],
                "target": "< 2 s",
                "met": r["import_s"] < 2.0,
            }
            out[f"import_{enc}_{r['n']}_vs_floor"] = {
                "value": r["vs_floor_time"],
                "target": "<= 1.5x",
                "met": r["vs_floor_time"] <= 1.5,
            }
    return out


def table(results: list[dict[str, Any]], goals: dict[str, Any]) -> str:
    headers = [
        "memories",
        "format",
        "file MB",
        "size vs JSON",
        "export s",
        "import s",
        "import vs floor",
        "recall@10 agreement",
    ]
    rows = [
        [
            r["n"],
            r["format"],
            r["bytes"] / 1e6,
            r["vs_json_size"],
            r["export_s"],
            r["import_s"],
            r["vs_floor_time"],
            r["agreement"],
        ]
        for r in results
    ]
    text = markdown_table(headers, rows)
    if goals:
        text += "\nTargets:\n\n" + markdown_table(
            ["target", "value", "goal", "met"],
            [
                [name, g["value"], g["target"], "yes" if g["met"] else "NO"]
                for name, g in goals.items()
            ],
        )
    return text


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    threads = set_threads(args.threads, arrow=True)
    with scratch_dir(args.work, "engramdb-snapbench-", keep=args.keep) as work:
        results: list[dict[str, Any]] = []
        for n in args.size_list:
            results += run_size(n, args, work)
    goals = targets(results)
    text = table(results, goals)
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    out = write_record(
        "snapshots",
        params={k: v for k, v in params.items() if k != "out"},
        threads=threads,
        figures={"rows": results, "targets": goals},
        table=text,
        out_dir=args.out,
    )
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
