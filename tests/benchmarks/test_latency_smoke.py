"""The latency benchmark runs end to end at a tiny size, every system included."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def latency(bench: Callable[[str], ModuleType]) -> ModuleType:
    return bench("latency")


@pytest.mark.slow
@pytest.mark.model
def test_latency_smoke(
    latency: ModuleType, bench: Callable[[str], ModuleType], out_dir: Path, tmp_path: Path
) -> None:
    systems = bench("systems")
    FLOOR, VARIANTS = systems.FLOOR, systems.VARIANTS
    out = out_dir
    path = latency.main(
        [
            "--sizes", "300",
            "--queries", "12",
            "--repeats", "2",
            "--warmup", "2",
            "--text-queries", "3",
            "--text-systems", "engramdb-flat,faiss-flat",
            "--real-size", "300",
            "--out", str(out),
            "--cache", str(tmp_path / "cache"),
        ]
    )  # fmt: skip
    record = json.loads(Path(path).read_text())
    assert record["benchmark"] == "latency"
    assert record["git_sha"] and record["versions"]["faiss-cpu"]
    assert record["machine"]["cpu_count"] >= 1
    assert record["threads"]["query_threads"] == 1
    datasets = record["figures"]["datasets"]
    assert set(datasets) == {"synthetic-300", "text-generated"}
    for name, ds in datasets.items():
        rows = ds["systems"]
        assert set(rows) == set(VARIANTS)
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
        for variant, floor in FLOOR.items():
            assert rows[variant]["ratios"]["floor"] == floor
            assert rows[variant]["ratios"]["vector_p50_vs_floor"] > 0
            assert rows[variant]["ratios"]["vector_p50_vs_chroma"] > 0
            assert "vector_no_access" in rows[variant]
        assert rows["engramdb-flat"]["text"]["n"] == 3
        assert "text" not in rows["engramdb-hnsw"]
    # One main table and one ratio table per data set.
    assert (out / "latency-latest.md").read_text().count("| engramdb-hnsw |") == 4
    assert len(record["figures"]["plots"]) == 2
    for png in record["figures"]["plots"]:
        assert Path(png).stat().st_size > 1000
