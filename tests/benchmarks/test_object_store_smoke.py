"""The object-store benchmark runs end to end at a tiny size on a moto server of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_object_store_smoke(bench, out_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    script = bench("object_store")
    args = "--size 300 --adds 4 --queries 6 --appends 3 --visibility 2".split()
    record = script.main([*args, "--out", str(out_dir), "--work", str(tmp_path)])
    figures = json.loads(Path(record).read_text())["figures"]
    for store in ("local", "s3"):
        assert figures[store]["add"]["n"] == 4 and figures[store]["recall"]["n"] == 6
        assert figures[store]["visible"]["n"] == 2
    # both stores did the same consolidation work on the same data
    assert figures["local"]["consolidation"] == figures["s3"]["consolidation"]
    for writers in (1, 2):
        run = figures["appends"][f"writers_{writers}"]
        assert run["rows"] == run["expected_rows"] == 3 * writers  # no acknowledged row lost
    assert figures["ratios"]["add_p50"] > 0
