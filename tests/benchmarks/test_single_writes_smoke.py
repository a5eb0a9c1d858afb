"""The single-writes benchmark runs end to end at a tiny size, both policies."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType


def test_single_writes_smoke(
    bench: Callable[[str], ModuleType], out_dir: Path, tmp_path: Path
) -> None:
    single_writes = bench("single_writes")
    path = single_writes.main(
        ["--adds", "40", "--updates", "8", "--every", "20", "--out", str(out_dir),
         "--work", str(tmp_path / "work")]
    )  # fmt: skip
    record = json.loads(Path(path).read_text())
    assert record["benchmark"] == "single_writes" and record["params"]["adds"] == 40
    figures = record["figures"]
    assert set(figures) == {"new", "old"}
    for fig in figures.values():
        assert fig["rows"] == 41  # the warm-up memory too
        assert fig["add_ms"]["n"] == 40 and fig["update_ms"]["n"] == 8
        assert 0 < fig["live_mb"] <= fig["disk_mb_peak"]
        assert fig["files_end"] > 0 and fig["rss_mb_end"] > 0
    assert (out_dir / "single_writes-latest.md").exists()
    assert list((tmp_path / "work").iterdir()) == []  # scratch stores removed
