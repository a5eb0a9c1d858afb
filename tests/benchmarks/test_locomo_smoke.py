"""The LoCoMo benchmark runs end to end on a tiny file in the LoCoMo format."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

SESSIONS = {
    1: (
        "1:56 pm on 8 May, 2023",
        [
            ("Ana", "I adopted a grey kitten called Pixel last week."),
            ("Ben", "Congrats! I am training for the Lisbon half marathon."),
            ("Ana", "Look at my new pottery bowl!", "a photo of a blue ceramic bowl"),
        ],
    ),
    2: (
        "10:02 am on 2 June, 2023",
        [
            ("Ben", "I finished the half marathon in under two hours."),
            ("Ana", "Pixel knocked my pottery bowl off the shelf."),
            ("Ben", "My sister moved to Osaka for a new job."),
        ],
    ),
}


QA = [
    {"question": "What is the name of Ana's kitten?", "answer": "Pixel",
     "evidence": ["D1:1"], "category": 4},
    {"question": "How fast did Ben run the half marathon?", "answer": "under two hours",
     "evidence": ["D1:2; D2:1"], "category": 1},
    {"question": "Where did Ben's sister move?", "answer": "Osaka",
     "evidence": ["D:2:3", "D2:3"], "category": 2},
    {"question": "What colour is Ana's bowl?", "adversarial_answer": "blue",
     "evidence": [], "category": 5},
]  # fmt: skip


@pytest.fixture
def tiny(locomo_file: Callable[..., Path]) -> Path:
    return locomo_file(SESSIONS, QA)


@pytest.fixture
def locomo(bench: Callable[[str], ModuleType]) -> ModuleType:
    return bench("locomo")


def test_loader_renders_turns_and_extracts_evidence(locomo: ModuleType, tiny: Path) -> None:
    (conv,) = locomo.read_locomo(tiny)
    texts = [locomo.memory_text(t) for t in conv.turns]
    assert len(texts) == 6
    assert texts[0] == 'Ana said, "I adopted a grey kitten called Pixel last week."'
    assert texts[2].endswith("[shares a photo of a blue ceramic bowl]")
    assert conv.sessions[1].date.isoformat() == "2023-06-02T10:02:00+00:00"
    assert [t.session for t in conv.turns] == [1, 1, 1, 2, 2, 2]
    assert [q.evidence for q in conv.questions] == [("D1:1",), ("D1:2", "D2:1"), ("D2:3",), ()]
    assert locomo.recall_turns(["D1:2", "D9:9"], ("D1:2", "D2:1"), 2) == 0.5
    assert locomo.recall_turns([], (), 5) == 1.0
    assert locomo.recall_sessions(["D2:1", "D2:2", "D1:1"], ("D1:2",), 1) == 0.0
    assert locomo.recall_sessions(["D2:1", "D2:2", "D1:1"], ("D1:2",), 2) == 1.0


@pytest.mark.model
def test_locomo_smoke(locomo: ModuleType, tiny: Path, out_dir: Path, tmp_path: Path) -> None:
    out = out_dir
    cache = tmp_path / "cache"
    args = ["--out", str(out), "--cache", str(cache), "--work", str(tmp_path)]
    path = locomo.main([str(tiny), "--k", "1,2,5", *args])
    record = json.loads(Path(path).read_text())
    assert record["params"]["questions"] == 4 and record["params"]["turns"] == 6
    systems = record["figures"]["systems"]
    assert set(systems) == set(locomo.SYSTEMS)
    for name, fig in systems.items():
        for level in ("turn", "session"):
            values = [fig[level][f"R@{k}"] for k in (1, 2, 5)]
            assert values == sorted(values), (name, level)  # recall grows with k
            assert all(0.0 <= v <= 1.0 for v in values)
        # Six turns, two sessions: k=5 sessions or more covers everything.
        assert fig["session"]["R@5"] == 1.0
        assert set(fig["turn"]["R@2_by_category"]) == {
            "single-hop", "multi-hop", "temporal", "adversarial"
        }  # fmt: skip
    # With the scoring extras off, engramdb ranks exactly as plain dense cosine does.
    for k in (1, 2, 5):
        sim_only, dense = systems["engramdb-sim-only"], systems["dense"]
        assert sim_only["turn"][f"R@{k}"] == pytest.approx(dense["turn"][f"R@{k}"])
    assert systems["bm25"]["turn"]["R@1"] >= 0.5  # the kitten and Osaka are lexical matches
    # Without access counting, a smaller k's turns are the prefix of the largest k's.
    assert record["figures"]["prefix"] == dict.fromkeys(
        ["engramdb-no-access", "engramdb-dense", "engramdb-lexical", "engramdb-sim-only"], 0
    )
    questions = json.loads(Path(record["figures"]["per_question_file"]).read_text())
    assert len(questions) == 4
    assert questions[0]["evidence"] == ["D1:1"]
    assert questions[3]["engramdb"]["turn"]["R@1"] == 1.0  # no evidence counts as found
    assert Path(record["figures"]["plot"]).stat().st_size > 1000
    assert (out / "locomo-latest.md").exists()


@pytest.mark.slow
@pytest.mark.model
def test_locomo_folds_smoke(
    locomo: ModuleType, locomo_file: Callable[..., Path], out_dir: Path, tmp_path: Path
) -> None:
    """Leave-one-out over two conversations on the tiny grid, and the ablation."""
    two = locomo_file(SESSIONS, QA, sample_ids=("conv-t1", "conv-t2"))
    args = ["--out", str(out_dir), "--cache", str(tmp_path / "cache"), "--work", str(tmp_path)]
    flags = ["--k", "1,10", "--systems", "bm25", "--folds", "--grid", "tiny", "--no-plots"]
    path = locomo.main([str(two), *flags, *args])
    record = json.loads(Path(path).read_text())
    folds = record["figures"]["folds"]
    assert [f["held_out"] for f in folds["folds"]] == ["conv-t1", "conv-t2"]
    for f in folds["folds"]:
        assert f["pick"]["a"] in folds["grid"]["a"]
        assert 0.0 <= f["held_out_figures"]["turn R@10"] <= 1.0
    # Two copies of one conversation: each fold's pick is the fit on all, and scores alike.
    assert folds["held_out_min"] == folds["held_out_max"]
    assert folds["fit_all"]["figures"]["turn R@10"] == folds["held_out_mean"]["turn R@10"]
    rows = {r["row"]: r for r in folds["ablation"]}
    assert len(rows) == 7 and all(0.0 <= r["session R@10"] <= 1.0 for r in rows.values())
    assert "Ablation through the engine" in (out_dir / "locomo-latest.md").read_text()
