"""Capping the C heap's arenas: checked in fresh processes (the cap is process-wide)."""

from __future__ import annotations

import ctypes.util
import os
import platform
import subprocess
import sys

import pytest

from engramdb import limit_malloc_arenas

_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

_CHILD = """
import ctypes, ctypes.util, sys, threading
import numpy as np
from engramdb import limit_malloc_arenas
capped = limit_malloc_arenas({arenas}) if {arenas} else None
kept = []
def work():
    kept.append([np.ones(64 + i) for i in range(200)])  # small blocks: from an arena
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()  # one "Arena n:" each, on stderr
print(capped)
"""


def _run(arenas: int, env_cap: str | None = None, tunable: bool = False) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    if env_cap is not None and tunable:
        env["GLIBC_TUNABLES"] = f"glibc.malloc.arena_max={env_cap}"
    elif env_cap is not None:
        env["MALLOC_ARENA_MAX"] = env_cap
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(arenas=arenas)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    arenas_used = sum(line.startswith("Arena ") for line in out.stderr.splitlines())
    return out.stdout.strip(), arenas_used


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_a_bad_cap_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="arenas"):
        limit_malloc_arenas(bad)  # type: ignore[arg-type]


@pytest.mark.skipif(not _GLIBC or not ctypes.util.find_library("c"), reason="glibc only")
def test_the_cap_holds_for_threads_started_after_it() -> None:
    capped, used = _run(1)
    assert capped == "True"
    assert used == 1
    _, free = _run(0)  # the same threads without a cap: one arena each, besides the main one
    assert free > 1


@pytest.mark.skipif(not _GLIBC, reason="glibc only")
@pytest.mark.parametrize("tunable", [False, True])
def test_the_environment_wins(tunable: bool) -> None:
    capped, used = _run(1, env_cap="3", tunable=tunable)
    assert capped == "False"
    assert 1 < used <= 3
