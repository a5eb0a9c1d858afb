"""The snapshot benchmark runs end to end at a tiny size."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.mark.slow
def test_snapshot_benchmark_smoke(bench: Callable[[str], ModuleType], out_dir: Path) -> None:
    script = bench("snapshots")
    out = out_dir
    args = ["--sizes", "300", "--queries", "5", "--repeats", "1", "--threads", "1"]
    path = script.main([*args, "--out", str(out), "--work", str(out.parent)])
    record = json.loads(Path(path).read_text())
    for key in ("git_sha", "versions", "machine", "threads", "params", "figures"):
        assert key in record
    rows = record["figures"]["rows"]
    formats = [r["format"] for r in rows]
    assert formats == [
        "naive JSON (float32 lists)",
        "floor: plain Arrow -> LanceDB",
        "snapshot float32",
        "snapshot float16",
        "snapshot int8",
        "snapshot float32 + AES-GCM",
    ]
    for row in rows:
        assert row["n"] == 300 and row["bytes"] > 0 and row["import_s"] > 0
    by = {r["format"]: r for r in rows}
    assert by["snapshot float32"]["agreement"] == 1.0
    assert by["snapshot int8"]["bytes"] < by["naive JSON (float32 lists)"]["bytes"]
    assert "int8_size_vs_json_300" in record["figures"]["targets"]
    table = (out / "snapshots-latest.md").read_text()
    assert "| 300 | snapshot int8 |" in table
