"""A store on S3-compatible object storage (a local moto server) against a local store.

Usage:
    python benchmarks/object_store.py [--size 10000] [--adds 50] [--queries 100]
                                      [--appends 40] [--out DIR] [--work DIR] [--threads 1]

Both stores are measured in the same run, one after the other, with the same
seeded data (generated sentences, the hashing embedder: the cost measured is
the engine's and the store's, not a model's). Per store:

- fill: one agent of ``--size`` memories, added in batches of 5,000 (one commit each);
- add: ``--adds`` single adds, each one commit (p50/p95/p99);
- recall: ``--queries`` recalls on the warm agent (p50/p95/p99);
- cold load: a fresh read-only engine's first recall, which reads the agent's rows
  from the store and builds its index (the cost of an agent a server has not seen);
- visibility: ``--visibility`` single adds, each timed from its return until a
  read-only engine's recall finds it (the reader follows every call on a local
  store, every ``follow_interval``, 1 s by default, on object storage);
- consolidation: one pass over the agent (timestamps spread over 90 days, one
  text in ten repeated), with the pass's counts to show both did the same work.

Then the concurrent-append stall on the S3 store: LanceDB tables written by one
process, then by two processes at once (``--appends`` single-row commits each,
straight through LanceDB: engramdb's own writer lease would refuse the second
process). LanceDB retries a commit that lost a race; the figure is how long the
loser waited: the max and p99 of a commit's latency with two writers against one.

The moto server runs in a process of its own on 127.0.0.1 (a free port), so its
request handling does not share this process's interpreter lock; it keeps
objects in memory, so the S3 figures are request overhead without a network's
latency (a real S3 adds about 10-30 ms per request; see docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    add_common_args,
    generated_sentences,
    markdown_table,
    percentiles,
    scratch_dir,
    set_offline_env,
    set_threads,
    write_record,
)

BUCKET = "engramdb-bench"
_MOTO = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("up", flush=True)
sys.stdin.read()  # until the parent closes our stdin
server.stop()
"""
_APPENDER = """
import json, sys, time
import lancedb, pyarrow as pa
uri, options, writer, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
table = lancedb.connect(uri, storage_options=options).open_table("appends")
print("ready", flush=True)
start = float(sys.stdin.readline())  # every appender is connected: start together
while time.time() < start:
    time.sleep(0.001)
latencies = []
for i in range(n):
    row = pa.table({"writer": [writer], "n": [i]})
    t = time.perf_counter()
    table.add(row)
    latencies.append(time.perf_counter() - t)
print(json.dumps(latencies))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    """A moto S3 server in its own process on 127.0.0.1, with one bucket; yields options."""
    import boto3

    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "up"
        endpoint = f"http://127.0.0.1:{port}"
        options = {
            "aws_endpoint": endpoint,
            "aws_region": "us-east-1",
            "aws_access_key_id": "bench",
            "aws_secret_access_key": "bench-secret",
            "allow_http": "true",
        }
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        ).create_bucket(Bucket=BUCKET)
        yield options
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _items(texts: list[str], seed: int) -> list[dict[str, Any]]:
    """Memories dated over the last 90 days (oldest first), one text in ten repeated."""
    now = datetime.now(UTC)
    n = len(texts)
    items = []
    for i, text in enumerate(texts):
        repeated = texts[(i * 7 + seed) % max(1, i)] if i % 10 == 9 else text
        when = now - timedelta(days=90 * (n - i) / n, minutes=5)
        items.append({"text": repeated, "created_at": when})
    return items


def measure_store(target: str | Path, options: dict[str, str] | None, args: Any) -> dict[str, Any]:
    """Fill, add, recall, cold load and consolidate one agent on one store."""
    from engramdb import MemoryEngine

    texts = generated_sentences(args.size + args.adds, seed=args.seed)
    items = _items(texts[: args.size], args.seed)
    questions = [t.split(",")[0] for t in texts[: args.queries]]
    out: dict[str, Any] = {}
    with MemoryEngine.open(target, storage_options=options, embedder="hashing") as engine:
        t = time.perf_counter()
        for start in range(0, args.size, 5000):
            engine.add_many(items[start : start + 5000], agent="a")
        out["fill_s"] = time.perf_counter() - t
        adds = []
        for text in texts[args.size :]:
            t = time.perf_counter()
            engine.add(text, agent="a")
            adds.append(time.perf_counter() - t)
        out["add"] = percentiles(adds, suffix="_ms")
        engine.recall(questions[0], agent="a")  # warm
        recalls = []
        for q in questions:
            t = time.perf_counter()
            engine.recall(q, agent="a", record_access=False)
            recalls.append(time.perf_counter() - t)
        out["recall"] = percentiles(recalls, suffix="_ms")
        with MemoryEngine.open(
            target, storage_options=options, embedder="hashing", read_only=True
        ) as cold:
            t = time.perf_counter()
            cold.recall(questions[0], agent="a", record_access=False)
            out["cold_load_s"] = time.perf_counter() - t
            lags = []
            for i in range(args.visibility):
                text = f"visibility probe {i} zqx{i}"
                engine.add(text, agent="a")
                t = time.perf_counter()
                while not any(
                    h.memory.text == text
                    for h in cold.recall(text, agent="a", k=3, record_access=False)
                ):
                    time.sleep(0.005)
                lags.append(time.perf_counter() - t)
            out["visible"] = {**percentiles(lags, suffix="_ms"), "max_ms": max(lags) * 1e3}
        t = time.perf_counter()
        report = engine.consolidate(agent="a").agents[0]
        out["consolidate_s"] = time.perf_counter() - t
        out["consolidation"] = {
            "groups_merged": report.groups_merged,
            "gists": report.gists,
            "clustered": report.clustered,
            "memories_after": engine.count(agent="a"),
        }
    return out


def _append_run(uri: str, options: dict[str, str], writers: int, n: int) -> list[list[float]]:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, uri, json.dumps(options), str(w), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    start = time.time() + 0.05
    runs = []
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(f"{start}\n")
        process.stdin.flush()
    for process in processes:
        stdout, _ = process.communicate(timeout=600)
        if process.returncode:
            raise RuntimeError(f"an appender failed with exit code {process.returncode}")
        runs.append(json.loads(stdout.strip().splitlines()[-1]))
    return runs


def measure_appends(options: dict[str, str], n: int) -> dict[str, Any]:
    """Single-row commits by one process, then by two at once, on one S3 table."""
    import lancedb
    import pyarrow as pa

    out: dict[str, Any] = {}
    for writers in (1, 2):
        uri = f"s3://{BUCKET}/appends-{writers}"
        schema = pa.schema([("writer", pa.int64()), ("n", pa.int64())])
        table = lancedb.connect(uri, storage_options=options).create_table("appends", schema=schema)
        runs = _append_run(uri, options, writers, n)
        table.checkout_latest()
        flat = [x for run in runs for x in run]
        out[f"writers_{writers}"] = {
            **percentiles(flat, suffix="_ms"),
            "max_ms": max(flat) * 1e3,
            "rows": table.count_rows(),
            "expected_rows": writers * n,
        }
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--adds", type=int, default=50)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--appends", type=int, default=40)
    parser.add_argument(
        "--visibility", type=int, default=10, help="writes timed until a reader recalls them"
    )
    add_common_args(parser, threads=1)
    args = parser.parse_args(argv)
    set_offline_env(args.threads)
    threads = set_threads(args.threads)
    load = os.getloadavg()
    with scratch_dir(args.work, "object-store-") as work, moto_server() as options:
        local = measure_store(work / "store", None, args)
        remote = measure_store(f"s3://{BUCKET}/store", options, args)
        appends = measure_appends(options, args.appends)
    figures: dict[str, Any] = {"local": local, "s3": remote, "appends": appends}
    ratios = {
        "add_p50": remote["add"]["p50_ms"] / local["add"]["p50_ms"],
        "recall_p50": remote["recall"]["p50_ms"] / local["recall"]["p50_ms"],
        "fill": remote["fill_s"] / local["fill_s"],
        "cold_load": remote["cold_load_s"] / local["cold_load_s"],
        "consolidate": remote["consolidate_s"] / local["consolidate_s"],
    }
    figures["ratios"] = ratios
    figures["load_average"] = load

    def both(fmt: str, pick: Any) -> list[str]:
        return [fmt.format(*pick(f)) for f in (local, remote)]

    rows = [
        [
            "add p50 / p95 ms",
            *both("{:.1f} / {:.1f}", lambda f: (f["add"]["p50_ms"], f["add"]["p95_ms"])),
            f"{ratios['add_p50']:.2f}x",
        ],
        [
            "recall p50 / p95 ms",
            *both("{:.2f} / {:.2f}", lambda f: (f["recall"]["p50_ms"], f["recall"]["p95_ms"])),
            f"{ratios['recall_p50']:.2f}x",
        ],
        [
            f"fill {args.size} memories, s",
            *both("{:.2f}", lambda f: (f["fill_s"],)),
            f"{ratios['fill']:.2f}x",
        ],
        [
            "cold agent load (first recall), s",
            *both("{:.2f}", lambda f: (f["cold_load_s"],)),
            f"{ratios['cold_load']:.2f}x",
        ],
        [
            "a write visible to a reader, p50 / max ms",
            *both("{:.0f} / {:.0f}", lambda f: (f["visible"]["p50_ms"], f["visible"]["max_ms"])),
            "",
        ],
        [
            "consolidation pass, s",
            *both("{:.2f}", lambda f: (f["consolidate_s"],)),
            f"{ratios['consolidate']:.2f}x",
        ],
        [
            "consolidation: merged / gists / after",
            *both(
                "{} / {} / {}",
                lambda f: (
                    f["consolidation"]["groups_merged"],
                    f["consolidation"]["gists"],
                    f["consolidation"]["memories_after"],
                ),
            ),
            "",
        ],
    ]
    table = markdown_table(
        [f"one agent of {args.size} memories", "local", "s3 (moto)", "s3/local"], rows
    )
    one, two = appends["writers_1"], appends["writers_2"]
    table += "\n" + markdown_table(
        ["single-row commits on s3", "p50 ms", "p95 ms", "p99 ms", "max ms", "rows / expected"],
        [
            [f"{w} writer(s)", f"{f['p50_ms']:.1f}", f"{f['p95_ms']:.1f}", f"{f['p99_ms']:.1f}",
             f"{f['max_ms']:.1f}", f"{f['rows']} / {f['expected_rows']}"]
            for w, f in ((1, one), (2, two))
        ],
    )  # fmt: skip
    table += (
        f"\nStall with two concurrent appenders: the slowest commit took {two['max_ms']:.0f} ms "
        f"against {one['max_ms']:.0f} ms alone (p99 {two['p99_ms']:.0f} against "
        f"{one['p99_ms']:.0f} ms). Load average at the start: {load[0]:.2f}.\n"
    )
    print(table)
    return write_record(
        "object_store",
        params=vars(args),
        threads=threads,
        figures=figures,
        table=table,
        out_dir=args.out,
    )


if __name__ == "__main__":
    main()
