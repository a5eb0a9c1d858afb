"""The reader-follows-writer benchmark runs at tiny size and writes its record."""

from __future__ import annotations

import json
from pathlib import Path


def test_reader_follow_smoke(bench, out_dir: Path, tmp_path: Path) -> None:
    script = bench("reader_follow")
    record = script.main(
        [
            "--size",
            "300",
            "--commits",
            "12",
            "--queries",
            "10",
            "--out",
            str(out_dir),
            "--work",
            str(tmp_path),
        ]
    )
    figures = json.loads(Path(record).read_text())["figures"]
    assert figures["after_commit"]["n"] == 12
    assert figures["steady"]["n"] == 10
    assert figures["p50_ratio"] > 0
