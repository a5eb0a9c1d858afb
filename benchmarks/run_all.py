"""Run the benchmark suite: ``make bench`` (or ``python benchmarks/run_all.py``).

Usage:
    python benchmarks/run_all.py                      # latency, LoCoMo quality, ingest (~15 min)
    python benchmarks/run_all.py --all                # + hierarchy, compression, snapshots
    python benchmarks/run_all.py --only latency,locomo
    python benchmarks/run_all.py --data ../shared/data

Each benchmark is its own script and writes its own JSON record and Markdown
table under ``benchmarks/results/``; this runner only sequences them (one at a
time, so no benchmark competes with another for the CPU). Benchmarks that need
an evaluation file are skipped, with a note, when the file is absent.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = ("latency", "locomo", "ingest")
EVERYTHING = (*DEFAULT, "hierarchy", "compression", "snapshots")


def commands(data: Path) -> dict[str, list[str] | None]:
    """The command line of each benchmark, or None when its data is missing."""
    locomo = data / "locomo" / "locomo-dev.json"
    closure = data / "wordnet" / "mammal_closure.csv"
    return {
        "latency": ["latency.py"],
        "locomo": ["locomo.py", str(locomo)] if locomo.exists() else None,
        "ingest": ["ingest.py"] + (["--locomo", str(locomo)] if locomo.exists() else []),
        "hierarchy": ["hierarchy.py", str(closure), "--threads", "2"] if closure.exists() else None,
        "compression": ["compression.py", str(locomo)] if locomo.exists() else None,
        "snapshots": ["snapshots.py"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="run every benchmark")
    parser.add_argument("--only", help="comma-separated benchmarks to run")
    parser.add_argument(
        "--data",
        type=Path,
        default=HERE.parent.parent / "shared" / "data",
        help="folder holding locomo/ and wordnet/ (default: ../shared/data)",
    )
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(EVERYTHING if args.all else DEFAULT)
    cmds = commands(args.data)
    unknown = [n for n in names if n not in cmds]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(EVERYTHING)}")
    failed = []
    for name in names:
        cmd = cmds[name]
        if cmd is None:
            print(f"-- {name}: skipped, its evaluation file is not under {args.data}")
            continue
        print(f"-- {name}: python benchmarks/{' '.join(cmd)}", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]])
        print(f"-- {name}: exit {code} after {time.monotonic() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
