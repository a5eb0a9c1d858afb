"""The hierarchy benchmark runs end to end at a tiny size."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def closure_csv(tmp_path: Path) -> Path:
    rows = ["id1,id2,weight"]
    for a in range(3):
        rows.append(f"n{a},root,1")
        for b in range(3):
            rows += [f"n{a}_{b},n{a},1", f"n{a}_{b},root,1"]
    path = tmp_path / "closure.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_hierarchy_benchmark_smoke(
    bench: Callable[[str], ModuleType], closure_csv: Path, out_dir: Path
) -> None:
    script = bench("hierarchy")
    out = out_dir
    record = script.main(
        [
            str(closure_csv),
            "--dims", "2",
            "--epochs", "2",
            "--threads", "1",
            "--out", str(out),
            "--work", str(out_dir.parent),
            "--recall-sizes", "2500",
            "--recall-dims", "4",
            "--queries", "60",
            "--engine-sizes", "400",
        ]
    )  # fmt: skip
    assert sorted(p.name for p in out.iterdir() if "latest" in p.name) == [
        "hierarchy-latest.json",
        "hierarchy-latest.md",
    ]
    saved = json.loads((out / "hierarchy-latest.json").read_text())
    assert saved == record and saved["benchmark"] == "hierarchy"
    for key in ("git_sha", "versions", "machine", "threads", "params", "figures"):
        assert key in saved
    assert saved["versions"]["geoopt"] and saved["threads"]["torch"] == 1
    saved = saved["figures"]
    assert {r["geometry"] for r in saved["reconstruction"]} == {"poincare", "euclidean"}
    for row in saved["reconstruction"]:
        assert {"dim", "mean_rank", "map", "train_s"} <= set(row)
    (res,) = saved["recall"]
    assert res["n"] == 2500
    assert 0.0 <= res["poincare_hnsw_conformal"]["recall_at_10"] <= 1.0
    assert {"p50_ms", "p95_ms", "p99_ms"} <= set(res["euclidean_hnsw"])
    assert res["p95_ratio"] > 0
    table = (out / "hierarchy-latest.md").read_text()
    assert "| poincare | 2 |" in table
    (eng,) = saved["engine"]
    assert eng["n"] == 400 and eng["tree"]["max_level"] >= 2
    for key in ("euclidean_hnsw", "poincare_hnsw", "poincare_flat"):
        assert 0 < eng[key]["p50"] <= eng[key]["p99"]
        assert eng[key]["n"] == 60
    # At this size the Poincaré graph index scans, so it must agree with exact search.
    assert eng["poincare_hnsw"]["recall_at_10"] == 1.0
    assert eng["euclidean_hnsw"]["recall_at_10"] >= 0.9
    assert eng["poincare_hnsw"]["ball_index"] == {
        "builds": 1,
        "moved": eng["poincare_hnsw"]["ball_index"]["moved"],
        "approximate": True,
    }
    assert eng["poincare_hnsw"]["ball_index"]["moved"] > 0
    assert eng["p95_ratio"] > 0
    assert "rank='distance'" in table
