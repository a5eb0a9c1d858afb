"""A reader's recall right after a writer's commit, against its steady recall.

Usage:
    python benchmarks/reader_follow.py [--size 20000] [--commits 40] [--queries 60]
                                       [--out DIR] [--work DIR] [--threads 1]

A writer process-local engine fills one agent with ``--size`` generated
sentences (hashing embedder: the cost measured is the engine's, not a model's),
a ``read_only`` engine on the same store answers recall, then the writer makes
``--commits`` single adds (each one LanceDB commit, some followed by an
access-count flush) and the reader recalls right after each. Reported: the
reader's steady p50/p95, its p50/p95 right after a commit, and their ratio
(the target: within 3x at 20k memories). Before readers followed writers, every
commit made the reader rebuild the agent's whole index on its next recall.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--queries", type=int, default=60)
    add_common_args(parser, threads=1)
    args = parser.parse_args(argv)
    set_offline_env(args.threads)
    threads = set_threads(args.threads)
    from engramdb import MemoryEngine

    texts = generated_sentences(args.size + args.commits, seed=args.seed)
    questions = [t.split(",")[0] for t in texts[: args.queries]]
    with scratch_dir(args.work, "reader-follow-") as work:
        with MemoryEngine.open(work / "store", embedder="hashing") as writer:
            for start in range(0, args.size, 5000):
                writer.add_many(texts[start : min(args.size, start + 5000)], agent="a")
            with MemoryEngine.open(work / "store", embedder="hashing", read_only=True) as reader:
                reader.recall(questions[0], agent="a")  # builds the view
                steady = []
                for q in questions:
                    t = time.perf_counter()
                    reader.recall(q, agent="a", record_access=False)
                    steady.append(time.perf_counter() - t)
                after = []
                for i in range(args.commits):
                    writer.add(texts[args.size + i], agent="a")
                    if i % 10 == 9:
                        writer.recall(questions[i % len(questions)], agent="a")
                        writer.flush()
                    t = time.perf_counter()
                    reader.recall(questions[i % len(questions)], agent="a", record_access=False)
                    after.append(time.perf_counter() - t)
    steady_p = percentiles(steady, suffix="_ms")
    after_p = percentiles(after, suffix="_ms")
    ratio = after_p["p50_ms"] / steady_p["p50_ms"]
    figures = {"steady": steady_p, "after_commit": after_p, "p50_ratio": ratio}
    table = (
        markdown_table(
            ["recall", "p50 ms", "p95 ms", "p99 ms"],
            [
                ["reader, steady", *(f"{steady_p[k]:.2f}" for k in ("p50_ms", "p95_ms", "p99_ms"))],
                [
                    "reader, after a commit",
                    *(f"{after_p[k]:.2f}" for k in ("p50_ms", "p95_ms", "p99_ms")),
                ],
            ],
        )
        + f"\nRatio of p50s: {ratio:.2f}x (target: at most 3x at 20k memories).\n"
    )
    print(table)
    return write_record(
        "reader_follow",
        params=vars(args),
        threads=threads,
        figures=figures,
        table=table,
        out_dir=args.out,
    )


if __name__ == "__main__":
    main()
