"""The recall-target benchmark runs at tiny size and writes its record."""

from __future__ import annotations

import json
from pathlib import Path


def test_recall_target_smoke(bench, out_dir: Path, tmp_path: Path) -> None:
    script = bench("recall_target")
    record = script.main(
        ["--sizes", "600", "--queries", "20", "--out", str(out_dir), "--cache", str(tmp_path)]
    )
    runs = json.loads(Path(record).read_text())["figures"]["runs"]
    assert [(r["data"], r["n"]) for r in runs] == [("low", 600), ("high", 600)]
    for run in runs:
        assert 0.0 <= run["recall_tuned"] <= 1.0
        assert run["ef_tuned"] >= 16
        assert run["latency_tuned"]["n"] == 20
