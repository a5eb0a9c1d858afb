"""Importing engramdb is cheap: the package and the cosine engine leave the model,
torch, geoopt, the hyperbolic maths and numba unloaded until something needs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engramdb

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "torch",
    "geoopt",
    "sentence_transformers",
    "transformers",
    "engramdb.hyperbolic.ball",
    "numba",
)


def loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.slow
def test_the_package_and_the_cosine_engine_import_nothing_heavy(tmp_path: Path) -> None:
    assert loaded_after("import engramdb, engramdb.errors") == []
    store = tmp_path / "s"
    code = (
        "from engramdb import MemoryEngine\n"
        f"with MemoryEngine.open({str(store)!r}, embedder='hashing') as e:\n"
        "    e.add('Alice moved to Lisbon', agent='a')\n"
        "    assert e.recall('Lisbon', agent='a')\n"
    )
    # numba (the fast extra) only loads for an index of bm25.MIN_POSTINGS postings.
    assert loaded_after(code) == []


def test_public_names_load_on_first_use() -> None:
    assert set(engramdb.__all__) <= set(dir(engramdb))
    from engramdb.engine import MemoryEngine

    assert engramdb.MemoryEngine is MemoryEngine
    import engramdb.hyperbolic as hyperbolic

    assert hyperbolic.fit_poincare.__module__ == "engramdb.hyperbolic.train"
