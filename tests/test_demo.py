"""The demo: its own store, rebuilt each run (never someone else's), and sensible answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from engramdb import demo


def test_fresh_rebuilds_the_demos_store_and_refuses_any_other(tmp_path: Path) -> None:
    path = demo.fresh(tmp_path / "demo")
    (path / "old-run").write_text("x")
    assert sorted(p.name for p in demo.fresh(path).iterdir()) == [demo.MARKER]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "precious").write_text("keep me")
    with pytest.raises(SystemExit):
        demo.fresh(other)
    assert (other / "precious").read_text() == "keep me"


def test_the_demo_store_sits_beside_the_default_store() -> None:
    from engramdb.config import default_store_path

    assert demo.demo_store() == default_store_path().parent / "demo"


@pytest.mark.model
@pytest.mark.slow
def test_the_demo_answers_from_the_right_memories(capsys: pytest.CaptureFixture[str]) -> None:
    demo.main()
    out = capsys.readouterr().out
    assert out.startswith("engramdb demo: loading")
    for heading in ("1. Recall", "2. Consolidation", "3. Snapshot"):
        assert heading in out
    from engramdb import MemoryEngine

    expected = {
        "What does the user eat?": "vegetarian",
        "Does the user prefer trains or planes?": "trains",
        "Is the user injured?": "knee",
        "What race is the user training for?": "half marathon",
    }
    size = sum(f.stat().st_size for f in demo.demo_store().rglob("*") if f.is_file())
    with MemoryEngine.open(demo.demo_store() / "store", read_only=True) as engine:
        for agent, questions in demo.QUESTIONS.items():
            for question in questions:
                top = engine.recall(question, agent=agent, k=1)[0].memory.text
                assert expected[question] in top, (question, top)
    demo.main()
    again = sum(f.stat().st_size for f in demo.demo_store().rglob("*") if f.is_file())
    assert again < 1.5 * size  # rebuilt, not grown
