"""The latency benchmark runs end to end at a tiny size, every system included."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

TINY = ["--sizes", "300", "--queries", "12", "--repeats", "2", "--warmup", "2"]
"""300 synthetic vectors: the fewest that LanceDB's IVF-PQ trains on (256), so every
system runs; 12 timed queries, 2 passes."""


@pytest.fixture
def latency(bench: Callable[[str], ModuleType]) -> ModuleType:
    return bench("latency")


def run(latency: ModuleType, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "results"
    cache, work = tmp_path / "cache", tmp_path / "work"
    path = latency.main(
        [*TINY, "--out", str(out), "--cache", str(cache), "--work", str(work), *args]
    )
    assert list(work.iterdir()) == []  # the scratch folder is gone
    return json.loads(Path(path).read_text())


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning")
def test_every_system_on_both_data_sets(
    latency: ModuleType, bench: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    """In one process (``--in-process``): the path of every system, without the imports
    and model loads of twenty worker processes."""
    systems = bench("systems")
    record = run(
        latency, tmp_path,
        "--text-queries", "3",
        "--text-systems", "engramdb-flat,faiss-flat",
        "--real-size", "40",
        "--in-process",
    )  # fmt: skip
    assert record["benchmark"] == "latency" and record["params"]["in_process"] is True
    assert record["git_sha"] and record["versions"]["faiss-cpu"]
    assert record["machine"]["cpu_count"] >= 1
    assert record["threads"]["query_threads"] == 1
    datasets = record["figures"]["datasets"]
    assert set(datasets) == {"synthetic-300", "text-generated"}
    for name, ds in datasets.items():
        rows = ds["systems"]
        assert set(rows) == set(systems.VARIANTS)
        if name == "text-generated":  # 40 texts: too few for PQ, and said so
            assert "fewer than 256" in rows.pop("lance-ivfpq")["skipped"]
        for variant, row in rows.items():
            assert "error" not in row, (name, variant, row["error"])
            assert row["vector"]["n"] >= 12
            assert 0 < row["vector"]["p50"] <= row["vector"]["p99"]
            assert 0.0 <= row["recall_at_10"] <= 1.0
            assert row["ingest_rate"] > 0
            assert row["cold_first_query_s"] > 0
            assert row["batch_qps"] > 0
        # Exact search finds the exact top 10, through engramdb as well as raw.
        for variant in ("engramdb-flat", "faiss-flat", "lance-flat", "engramdb-lance"):
            assert rows[variant]["recall_at_10"] >= 0.99, (name, variant)
        for variant, floor in systems.FLOOR.items():
            assert rows[variant]["ratios"]["floor"] == floor
            assert rows[variant]["ratios"]["vector_p50_vs_floor"] > 0
            assert rows[variant]["ratios"]["vector_p50_vs_chroma"] > 0
            assert "vector_no_access" in rows[variant]
        assert rows["engramdb-flat"]["text"]["n"] == 3
        assert "text" not in rows["engramdb-hnsw"]
        # Hybrid and dense recall by text, side by side, with and without the embedding.
        modes = rows["engramdb-flat"]["text_modes"]
        for key in ("hybrid", "dense", "hybrid_search_only", "dense_search_only"):
            assert modes[key]["n"] == 3 and modes[key]["p50"] > 0
        assert modes["ratio_p50"] == modes["hybrid"]["p50"] / modes["dense"]["p50"]
    # One main table and one ratio table per data set.
    out = tmp_path / "results"
    table = (out / "latency-latest.md").read_text()
    assert table.count("| engramdb-hnsw |") == 4
    assert table.count("hybrid against dense") == 2 and "| engramdb-flat | " in table
    assert len(record["figures"]["plots"]) == 2
    for png in record["figures"]["plots"]:
        assert Path(png).stat().st_size > 1000


def test_jobs_run_in_worker_processes(latency: ModuleType, tmp_path: Path) -> None:
    """The default: one process for the builds, one per system for the queries."""
    record = run(
        latency, tmp_path, "--systems", "faiss-flat", "--no-real", "--text-queries", "0",
        "--no-plots",
    )  # fmt: skip
    assert record["params"]["in_process"] is False
    (ds,) = record["figures"]["datasets"].values()
    row = ds["systems"]["faiss-flat"]
    assert "error" not in row, row["error"]
    assert row["recall_at_10"] >= 0.99 and row["vector"]["n"] >= 12
    assert row["wall_s"] > row["cold_first_query_s"] > 0 and ds["ingest_worker_s"] > 0
