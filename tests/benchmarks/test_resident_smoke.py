"""The resident-memory benchmark runs at tiny size and writes its record."""

from __future__ import annotations

import json
from pathlib import Path


def test_resident_smoke(bench, out_dir: Path, tmp_path: Path) -> None:
    script = bench("resident")
    record = script.main(
        [
            "--size",
            "600",
            "--exact-threshold",
            "300",
            "--out",
            str(out_dir),
            "--work",
            str(tmp_path / "work"),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    figures = json.loads(Path(record).read_text())["figures"]
    engine = {k: v for k, v in figures.items() if not k.startswith("raw")}
    assert [v["source"] for v in engine.values()] == ["store"] * 3 + ["cache"] * 3
    assert all(v["memories"] == 600 for v in figures.values())
    assert all(isinstance(v["rss_bytes_per_memory"], float) for v in figures.values())
    if Path("/proc/self/smaps_rollup").exists():  # Linux: the anonymous part is measured
        assert all(isinstance(v["anon_bytes_per_memory"], float) for v in figures.values())
