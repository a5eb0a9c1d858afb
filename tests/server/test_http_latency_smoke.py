"""The HTTP latency benchmark runs end to end at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def http_latency(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    import http_latency

    module: ModuleType = http_latency
    return module


@pytest.mark.slow
def test_http_latency_smoke(http_latency: ModuleType, tmp_path: Path) -> None:
    args = ["--size", "150", "--queries", "8", "--warmup", "2", "--seconds", "0.5"]
    # --mcp-calls 0: the stdio child is exercised by test_mcp.py; skipping it here saves
    # one more torch import in a child process
    path = http_latency.main([*args, "--mcp-calls", "0", "--out", str(tmp_path)])
    record = json.loads(Path(path).read_text())
    figures = record["figures"]
    assert figures["in_process_ms"]["n"] == 8 and figures["http_ms"]["n"] == 8
    assert figures["mcp_stdio_ms"]["n"] == 0
    assert figures["http_throughput"]["requests"] > 0
    assert (tmp_path / "http_latency-latest.md").exists()
