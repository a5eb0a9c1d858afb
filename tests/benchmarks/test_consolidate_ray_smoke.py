"""The Ray consolidation benchmark runs end to end at a tiny size."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.mark.slow
def test_consolidate_ray_smoke(
    bench: Callable[[str], ModuleType],
    out_dir: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'engramdb[ray]'")
    # Ray's sockets live under $TMPDIR, in paths of at most 107 bytes: a short one.
    short = tmp_path_factory.mktemp("r")
    monkeypatch.setenv("TMPDIR", str(short))
    monkeypatch.setattr(tempfile, "tempdir", str(short))
    consolidate_ray = bench("consolidate_ray")
    path = consolidate_ray.main(
        ["--agents", "2", "--per-agent", "60", "--num-cpus", "1", "--dim", "32",
         "--out", str(out_dir), "--work", str(tmp_path / "work")]
    )  # fmt: skip
    record = json.loads(Path(path).read_text())
    assert record["benchmark"] == "consolidate_ray" and record["params"]["agents"] == 2
    figures = record["figures"]
    assert figures["same_contents"] is True
    local, ray = figures["local"], figures["ray"]
    assert local["active_before"] == ray["active_before"] == 120
    assert local["active_after"] == ray["active_after"] < 120  # the pass had work
    assert ray["init_s"] > 0 and ray["warm_workers"] == 1 and ray["ray_peak_rss_mb"] > 0
    assert (out_dir / "consolidate_ray-latest.md").exists()
    assert list((tmp_path / "work").iterdir()) == []  # scratch stores removed
