"""The ingest benchmark runs end to end at a tiny size."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.mark.slow
@pytest.mark.model
def test_ingest_smoke(bench: Callable[[str], ModuleType], out_dir: Path) -> None:
    ingest = bench("ingest")
    args = [
        "--texts",
        "16",
        "--repeats",
        "2",
        "--batch",
        "8",
        "--warmup",
        "4",
    ]  # 2 passes, 2 batches
    path = ingest.main([*args, "--out", str(out_dir), "--work", str(out_dir.parent / "work")])
    record = json.loads(Path(path).read_text())
    figures = record["figures"]
    assert record["benchmark"] == "ingest" and record["params"]["texts"] == 16
    assert record["threads"]["torch_threads"] == 2
    assert set(figures["texts_per_s"]) == {"model", "embedder", "add_many", "add_many_loaded"}
    assert all(len(v) == 2 for v in figures["seconds"].values())
    assert len(figures["first_recall_s"]) == 2 and min(figures["first_recall_s"]) > 0
    assert 0 < figures["add_many_until_first_recall_per_s"] < figures["texts_per_s"]["add_many"]
    assert all(rate > 0 for rate in figures["texts_per_s"].values())
    assert figures["ratio_add_many_vs_model"] == pytest.approx(
        figures["texts_per_s"]["add_many"] / figures["texts_per_s"]["model"]
    )
    assert (out_dir / "ingest-latest.md").exists()
