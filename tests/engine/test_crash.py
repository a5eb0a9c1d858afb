"""A writer killed with SIGKILL leaves a store that opens and holds every acknowledged write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engramdb import MemoryEngine

WRITER = """
import sys
from engramdb import MemoryEngine
eng = MemoryEngine.open(sys.argv[1], embedder="hashing")
i = 0
while True:
    batch = [f"batch {i} item {j} " + "words " * (j % 7) for j in range(50)]
    mems = eng.add_many(batch, agent="crashy", session=f"s{i % 3}")
    print(i, ",".join(m.id for m in mems), flush=True)
    i += 1
"""


@pytest.mark.slow
def test_sigkill_during_add_many_loses_no_acknowledged_write(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store)], stdout=subprocess.PIPE, text=True
    )
    acked: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while len(acked) < 40 * 50 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked += line.split()[1].split(",")
    os.kill(proc.pid, signal.SIGKILL)  # mid-loop: the next add_many is in flight
    proc.wait()
    acked += [x for line in proc.stdout.read().splitlines() for x in line.split()[1].split(",")]
    assert len(acked) >= 1000
    with MemoryEngine.open(store, embedder="hashing") as eng:  # opens: the lock died with it
        stored = {m.id for m in eng.list(agent="crashy", limit=None)}
        assert set(acked) <= stored
        assert len(stored) % 50 == 0  # whole batches only: each add_many is one commit
        assert eng.recall("batch 3 item 7", agent="crashy", k=1)[0].memory.text.startswith(
            "batch 3 item 7"
        )
