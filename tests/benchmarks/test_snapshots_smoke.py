"""The snapshot benchmark runs end to end at a tiny size."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "snapshots.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_snapshots", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_snapshot_benchmark_smoke(tmp_path: Path) -> None:
    bench = load_script()
    out = tmp_path / "results"
    path = bench.main(
        ["--sizes", "300", "--queries", "5", "--repeats", "1", "--threads", "1", "--out", str(out)]
    )
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
