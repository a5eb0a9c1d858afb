"""The cold-start benchmark runs at tiny size and writes its record."""

from __future__ import annotations

import json
from pathlib import Path


def test_cold_start_smoke(bench, out_dir: Path, tmp_path: Path) -> None:
    script = bench("cold_start")
    record = script.main(
        [
            "--size",
            "400",
            "--small",
            "100",
            "--added",
            "20",
            "--exact-threshold",
            "300",
            "--queries",
            "3",
            "--rounds",
            "1",
            "--out",
            str(out_dir),
            "--work",
            str(tmp_path / "work"),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    figures = json.loads(Path(record).read_text())["figures"]
    phases = figures["phases"]
    assert [p["source"] for p in phases.values()] == ["store", "store", "cache", "cache+catch-up"]
    assert phases["fresh cache"]["counts"]["builds"] == 0
    assert figures["identical"]
    assert figures["reloads"]["evictions"] >= 2
