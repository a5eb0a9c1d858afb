"""Recall over HTTP and MCP beside the in-process call: latency, throughput, round trips.

Usage:
    python benchmarks/http_latency.py                          # 10k memories, hashing embedder
    python benchmarks/http_latency.py --embedder minilm        # the bundled model (slower build)
    python benchmarks/http_latency.py --size 200 --queries 10 --seconds 1 --mcp-calls 5 \\
        --out /tmp/r                                           # smoke

One seeded store of ``--size`` generated sentences for one agent, then, in turn:

1. in-process: ``engine.recall(question, k=10, record_access=False)`` in this process;
2. HTTP: the same recall as ``POST /v1/agents/bench/recall`` to ``engramdb serve`` in a
   child process on 127.0.0.1 (one keep-alive connection, one request at a time);
3. HTTP throughput: ``--clients`` threads, each with its own connection, sending
   recalls for ``--seconds``; requests/s over all of them;
4. MCP: the ``recall`` tool over stdio to ``engramdb mcp`` in a child process,
   through the official SDK client (JSON-RPC framing, pydantic output).

Every query text is distinct within a latency pass, and each latency pass runs in a
process whose embedding cache has not seen the questions, so each one embeds every
query (with minilm, the model's forward pass is most of the time). The throughput
run repeats the questions the server has just embedded: it measures the server, not
the model. Warm-up calls come first and are not timed. The server and the MCP child
run with OMP_NUM_THREADS=1 like this process. Figures go to
``benchmarks/results/http_latency-*.json|md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    generated_questions,
    generated_sentences,
    markdown_table,
    parse_size,
    percentiles,
    set_offline_env,
    timed,
    write_record,
)

AGENT = "bench"
ROOT = Path(__file__).resolve().parents[1]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def build_store(path: Path, size: int, embedder: str, seed: int) -> float:
    """Write ``size`` memories; returns seconds taken."""
    from engramdb import MemoryEngine

    texts = generated_sentences(size, seed=seed)
    start = time.perf_counter()
    with MemoryEngine.open(path, embedder=embedder) as engine:
        for i in range(0, size, 1000):
            engine.add_many(texts[i : i + 1000], agent=AGENT)
    return time.perf_counter() - start


def in_process(path: Path, embedder: str, questions: list[str], warmup: list[str]) -> list[float]:
    from engramdb import MemoryEngine

    with MemoryEngine.open(path, embedder=embedder) as engine:
        return timed(
            lambda q: engine.recall(q, agent=AGENT, k=10, record_access=False),
            questions,
            warmup=warmup,
        )


def http_phase(
    path: Path,
    embedder: str,
    questions: list[str],
    warmup: list[str],
    clients: int,
    seconds: float,
) -> tuple[list[float], dict[str, float]]:
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engramdb.server",
            "serve",
            "--store",
            str(path),
            "--port",
            str(port),
            "--embedder",
            embedder,
            "--log-level",
            "warning",
            "--rate",
            "0",
            "--no-mcp",
        ],
        env=_child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=60) as c:

            def one(q: str) -> None:
                r = c.post(
                    f"/v1/agents/{AGENT}/recall",
                    json={"query": q, "k": 10, "record_access": False},
                )
                r.raise_for_status()

            latency = timed(one, questions, warmup=warmup)
        counts = [0] * clients
        stop = time.monotonic() + seconds

        def hammer(n: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as c:
                i = 0
                while time.monotonic() < stop:
                    q = questions[(n + i * clients) % len(questions)]
                    c.post(
                        f"/v1/agents/{AGENT}/recall",
                        json={"query": q, "k": 10, "record_access": False},
                    ).raise_for_status()
                    counts[n] += 1
                    i += 1

        started = time.monotonic()
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        return latency, {
            "requests": sum(counts),
            "seconds": elapsed,
            "req_per_s": sum(counts) / elapsed,
        }
    finally:
        proc.terminate()
        proc.wait(30)


def mcp_phase(
    path: Path, embedder: str, questions: list[str], warmup: list[str]
) -> tuple[list[float], float]:
    import anyio
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "engramdb.server",
            "mcp",
            "--store",
            str(path),
            "--agent",
            AGENT,
            "--embedder",
            embedder,
        ],
        env=_child_env(),
    )
    samples: list[float] = []
    handshake = 0.0

    async def main() -> None:
        nonlocal handshake
        t0 = time.perf_counter()
        async with Client(params, mode="legacy") as client:
            handshake = time.perf_counter() - t0
            for q in warmup:
                await client.call_tool("recall", {"query": q, "k": 10})
            for q in questions:
                t1 = time.perf_counter()
                result = await client.call_tool("recall", {"query": q, "k": 10})
                samples.append(time.perf_counter() - t1)
                if result.is_error:
                    raise RuntimeError(f"MCP recall failed: {result.content}")

    anyio.run(main)
    return samples, handshake


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="10k", help="Memories in the store (e.g. 10k).")
    parser.add_argument("--queries", type=int, default=300, help="Timed queries per face.")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed queries first.")
    parser.add_argument("--embedder", default="hashing", help="'hashing' or 'minilm'.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent HTTP clients.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Throughput run length.")
    parser.add_argument("--mcp-calls", type=int, default=100, help="Timed MCP recalls (0: skip).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="Results directory.")
    args = parser.parse_args(argv)
    set_offline_env(threads=1)
    size = parse_size(args.size)
    asked = generated_questions(args.warmup + args.queries, seed=args.seed + 1)
    warmup, questions = asked[: args.warmup], asked[args.warmup :]

    tmp = Path(tempfile.mkdtemp(prefix="engramdb-http-bench-"))
    try:
        store = tmp / "store"
        build_seconds = build_store(store, size, args.embedder, args.seed)
        local = in_process(store, args.embedder, questions, warmup)
        remote, throughput = http_phase(
            store, args.embedder, questions, warmup, args.clients, args.seconds
        )
        mcp: list[float] = []
        handshake = float("nan")
        if args.mcp_calls:
            mcp, handshake = mcp_phase(
                store,
                args.embedder,
                questions[: args.mcp_calls],
                warmup[: max(1, args.warmup // 4)],
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    figures: dict[str, Any] = {
        "build_seconds": build_seconds,
        "in_process_ms": percentiles(local),
        "http_ms": percentiles(remote),
        "http_throughput": throughput,
        "mcp_stdio_ms": percentiles(mcp),
        "mcp_stdio_handshake_s": handshake,
    }
    rows = [
        ["in-process recall", *(figures["in_process_ms"][p] for p in ("p50", "p95", "p99"))],
        ["HTTP recall (1 client)", *(figures["http_ms"][p] for p in ("p50", "p95", "p99"))],
        ["MCP recall over stdio", *(figures["mcp_stdio_ms"][p] for p in ("p50", "p95", "p99"))],
    ]
    table = markdown_table(["path", "p50 ms", "p95 ms", "p99 ms"], rows)
    table += (
        f"\nHTTP throughput, {args.clients} concurrent clients for {throughput['seconds']:.1f} s: "
        f"{throughput['req_per_s']:.0f} recalls/s (query embeddings cached). MCP stdio "
        f"handshake (process start "
        f"included): {handshake:.2f} s. Store: {size} memories, embedder {args.embedder}.\n"
    )
    path = write_record(
        "http_latency",
        params={**vars(args), "out": str(args.out) if args.out else None, "size": size},
        threads={"omp": 1, "server_workers": 1, "http_clients": args.clients},
        figures=figures,
        table=table,
        out_dir=args.out,
    )
    print(table)
    return path


if __name__ == "__main__":
    main()
