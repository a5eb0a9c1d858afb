"""The compression benchmark runs end to end on a tiny LoCoMo-format file."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

TURNS = [
    ("Ana", "I adopted a grey kitten called Pixel last week."),
    ("Ben", "That's great! I'm training for the Lisbon half marathon."),
    ("Ana", "Look at my new pottery bowl!", "a photo of a blue ceramic bowl"),
    ("Ben", "Thanks! I really love it."),
    ("Ana", "Thanks! I really love it too."),
    ("Ben", "My sister moved to Osaka for a new job."),
]
DATES = ["1:56 pm on 8 May, 2023", "10:02 am on 2 June, 2023", "6:30 pm on 20 July, 2023"]
OBSERVATION = {
    "session_1_observation": {
        "Ana": [["Ana adopted a grey kitten named Pixel.", "D1:1"]],
        "Ben": [["Ben's sister moved to Osaka.", ["D1:6", "D2:6"]]],
    }
}
QA = [
    {"question": "What is the name of Ana's kitten?", "evidence": ["D1:1"], "category": 4},
    {"question": "Where did Ben's sister move?", "evidence": ["D1:6; D3:6"], "category": 1},
    {"question": "What colour is the bowl?", "evidence": [], "category": 5},
]


@pytest.fixture
def tiny_locomo(locomo_file: Callable[..., Path]) -> Path:
    """Two copies of a three-session conversation, with observations."""
    sessions = {s: (date, TURNS) for s, date in enumerate(DATES, start=1)}
    return locomo_file(sessions, QA, observation=OBSERVATION, sample_ids=("conv-t1", "conv-t2"))


@pytest.fixture
def compression(bench: Callable[[str], ModuleType]) -> ModuleType:
    return bench("compression")


def test_rewording_is_light_and_seeded(bench: Callable[[str], ModuleType]) -> None:
    locomo_log = bench("locomo_log")
    text = "I'm really happy, it's a great day!"
    a = locomo_log.reword(text, random.Random("x"))
    assert a == locomo_log.reword(text, random.Random("x")) and a != text


def test_the_workload_has_turns_observations_and_copies(
    compression: ModuleType, tiny_locomo: Path
) -> None:
    convs = compression.load_locomo(tiny_locomo, copy_fraction=1.0, seed=0)
    items = convs[0].items
    kinds = [(it["kind"], bool(it["metadata"].get("copy"))) for it in items]
    assert kinds.count(("episodic", False)) == kinds.count(("episodic", True)) == 18
    assert kinds.count(("semantic", False)) == 2
    assert items[2]["text"].endswith("[shares: a photo of a blue ceramic bowl]")
    obs = next(it for it in items if it["kind"] == "semantic" and "Osaka" in it["text"])
    assert obs["metadata"]["turns"] == ["D1:6", "D2:6"]
    assert convs[0].questions[1]["evidence"] == ["D1:6", "D3:6"]
    at = {(it["metadata"].get("dia_id"), bool(it["metadata"].get("copy"))): it["created_at"]
          for it in items}  # fmt: skip
    assert at["D2:2", False].isoformat() == "2023-06-02T10:02:30+00:00"  # its session's date, UTC
    assert at["D2:2", True].isoformat() == "2023-06-02T10:02:40+00:00"


def test_budget_recall_charges_each_memory_its_turns(compression: ModuleType) -> None:
    turns = {"a": frozenset({"D1:1"}), "big": frozenset(f"D2:{i}" for i in range(9)),
             "b": frozenset({"D1:2"}), "c": frozenset({"D1:3", "D1:4"})}  # fmt: skip
    recall, read = compression.budget_recall(["a", "big", "b", "c"], ["D1:3"], turns.get, 3)
    assert (recall, read) == (0.0, 2)  # "big" does not fit; "c" would overflow: not read
    recall, read = compression.budget_recall(["c", "a"], ["D1:3", "D1:1"], turns.get, 3)
    assert (recall, read) == (1.0, 2)


@pytest.mark.slow
def test_the_benchmark_runs_and_writes_its_record(
    compression: ModuleType, tiny_locomo: Path, out_dir: Path, tmp_path: Path
) -> None:
    out = out_dir
    path = compression.main(
        [str(tiny_locomo), "--embedder", "hashing", "--scale", "3000",
         "--cache", str(tmp_path / "cache"), "--out", str(out), "--work", str(tmp_path)]
    )  # fmt: skip
    record = json.loads(path.read_text())
    total = record["figures"]["total"]
    assert total["active_after"] < total["active_before"]
    assert 0.0 <= total["recall_after"] <= 1.0 and total["questions"] == 6
    assert record["figures"]["scale"]["memories"] == 3000
    conv = record["figures"]["conversations"][0]
    assert conv["second_pass_changed"] is False
    assert conv["dedup"]["copies_merged"] > 0.5
    assert conv["size_after"]["active_snapshot_bytes"] < conv["size_before"]["snapshot_bytes"]
    assert record["git_sha"] and record["versions"]["numpy"]
    assert (out / "compression-latest.md").read_text().count("conv-t") >= 2
