"""What the benchmark smoke tests share: importing a script, its folder, a tiny LoCoMo file.

Scripts import their shared modules (``common``, ``locomo_data``...) by plain name, as
they do when run from the command line, so ``benchmarks/`` goes on ``sys.path`` for
the test that asks for :func:`bench`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
"""The benchmark scripts' folder."""

TurnSpec = tuple[str, ...]
"""``(speaker, text)`` or ``(speaker, text, blip_caption)``."""


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import a benchmark script or shared module by name: ``bench("latency")``."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    return importlib.import_module


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """Where a smoke run writes its record (``--out``); inside ``tmp_path``, so nothing stays."""
    return tmp_path / "results"


@pytest.fixture
def locomo_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a LoCoMo-format file: ``locomo_file(sessions, qa, ...)`` returns its path.

    ``sessions`` maps a session number to ``(date, turns)``; turn ids are
    ``D<session>:<position>``. Each of ``sample_ids`` gets the same conversation.
    """

    def write(
        sessions: Mapping[int, tuple[str, Sequence[TurnSpec]]],
        qa: Sequence[Mapping[str, object]],
        *,
        observation: Mapping[str, object] | None = None,
        sample_ids: Sequence[str] = ("conv-t1",),
        name: str = "locomo.json",
    ) -> Path:
        conversation: dict[str, object] = {"speaker_a": "Ana", "speaker_b": "Ben"}
        for s, (date, turns) in sessions.items():
            conversation[f"session_{s}_date_time"] = date
            conversation[f"session_{s}"] = [
                {"speaker": t[0], "dia_id": f"D{s}:{i + 1}", "text": t[1]}
                | ({"blip_caption": t[2]} if len(t) > 2 else {})
                for i, t in enumerate(turns)
            ]
        extra = {} if observation is None else {"observation": observation}
        data = [
            {"sample_id": sid, "conversation": conversation, "qa": list(qa), **extra}
            for sid in sample_ids
        ]
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return path

    return write
