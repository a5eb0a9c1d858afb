"""``engramdb consolidate``: the batch job over a store's agents."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from engramdb import MemoryEngine
from engramdb.cli.app import app
from engramdb.cli.consolidate import JOURNAL

runner = CliRunner()
T0 = datetime(2024, 3, 1, tzinfo=UTC)

SUMMARIZER = """
import os
from pathlib import Path

def summarize(texts):
    if any("poison" in t for t in texts):
        raise RuntimeError("the summarizer choked")
    flag = Path(os.environ.get("CONSOLIDATE_TEST_FLAG", "/nonexistent"))
    if any("interrupt" in t for t in texts) and flag.exists():
        flag.unlink()
        raise KeyboardInterrupt
    return "Summary: " + texts[0]
"""


def populate(path: Path, agents: dict[str, str]) -> None:
    """Each agent: a duplicate pair and a cluster of five old notes on its word."""
    rng = np.random.default_rng(0)
    with MemoryEngine.open(path, embedder="hashing") as eng:
        for agent, word in agents.items():
            centre = rng.standard_normal(256)
            items: list[dict[str, Any]] = []
            for i in range(5):
                v = centre / np.linalg.norm(centre) + 0.6 * rng.standard_normal(256) / 16
                items.append(
                    {"text": f"{word} note {i}", "created_at": T0 + timedelta(hours=i),
                     "vector": v / np.linalg.norm(v)}
                )  # fmt: skip
            items += [
                {"text": f"the {word} report", "created_at": T0 + timedelta(days=30)},
                {"text": f"The {word} report!", "created_at": T0 + timedelta(days=30, hours=1)},
            ]
            eng.add_many(items, agent=agent)


@pytest.fixture
def summarizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "cli_summary_mod.py").write_text(SUMMARIZER)
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = tmp_path / "policy.toml"
    policy.write_text('summarize = "cli_summary_mod:summarize"\n\n[forget]\nenabled = false\n')
    yield policy
    sys.modules.pop("cli_summary_mod", None)


def invoke(store: Path, *args: str) -> Any:
    return runner.invoke(app, ["consolidate", "--store", str(store), *args])


def rows(store: Path) -> dict[str, list[tuple[str, str]]]:
    with MemoryEngine.open(store, embedder="hashing", read_only=True) as eng:
        return {
            a: sorted(
                (m.text, m.status.value)
                for m in eng.list(agent=a, limit=None, include_archived=True)
            )
            for a in eng.agents()
        }


def test_all_agents_are_consolidated_with_a_summary(store_path: Path) -> None:
    populate(store_path, {"a1": "tea", "a2": "jazz"})
    result = invoke(store_path, "--all")
    assert result.exit_code == 0, result.output
    assert "a1" in result.stdout and "a2" in result.stdout
    assert result.stdout.count("7->2") == 2  # two active left per agent: a gist and a merge
    assert "all agents" in result.stderr  # the progress bars go to stderr
    assert not (store_path / JOURNAL).exists()
    for texts in rows(store_path).values():
        assert sum(status == "active" for _, status in texts) == 2


def test_json_output_and_dry_run(store_path: Path) -> None:
    populate(store_path, {"a1": "tea", "a2": "jazz"})
    before = rows(store_path)
    result = invoke(store_path, "--all", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["failed"] == 0
    assert [(r["agent"], r["status"]) for r in report["agents"]] == [("a1", "ok"), ("a2", "ok")]
    assert all(r["gists"] == 1 and r["groups_merged"] == 1 for r in report["agents"])
    assert rows(store_path) == before  # nothing written
    assert not (store_path / JOURNAL).exists()


def test_a_failing_agent_fails_the_run_but_the_others_finish(
    store_path: Path, summarizer: Path
) -> None:
    populate(store_path, {"a1": "tea", "bad": "poison", "a3": "jazz"})
    before = rows(store_path)
    result = invoke(store_path, "--all", "--policy", str(summarizer), "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    status = {r["agent"]: r["status"] for r in report["agents"]}
    assert status == {"a1": "ok", "bad": "failed", "a3": "ok"}
    assert "the summarizer choked" in result.stderr
    after = rows(store_path)
    assert after["bad"] == before["bad"]  # untouched
    for agent in ("a1", "a3"):
        assert after[agent] != before[agent]
        assert any(text.startswith("Summary: ") for text, _ in after[agent])
    assert json.loads((store_path / JOURNAL).read_text())["done"] == ["a1", "a3"]


def test_unknown_agents_fail_alone(store_path: Path) -> None:
    populate(store_path, {"a1": "tea"})
    result = invoke(store_path, "--agent", "a1", "--agent", "nobody")
    assert result.exit_code == 1
    assert "nobody" in result.stderr and "no memories" in result.stderr
    assert any(status == "archived" for _, status in rows(store_path)["a1"])


def test_an_interrupted_run_resumes_without_redoing_finished_agents(
    store_path: Path, summarizer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(store_path, {"a1": "tea", "a2": "interrupt", "a3": "jazz"})
    flag = tmp_path / "flag"
    flag.touch()
    monkeypatch.setenv("CONSOLIDATE_TEST_FLAG", str(flag))
    result = invoke(store_path, "--all", "--policy", str(summarizer))
    assert result.exit_code != 0  # Ctrl-C while a2 was being consolidated
    assert json.loads((store_path / JOURNAL).read_text())["done"] == ["a1"]
    done_a1 = rows(store_path)["a1"]

    result = invoke(store_path, "--all", "--policy", str(summarizer), "--json")
    assert result.exit_code == 0, result.output
    assert "resuming an interrupted run" in result.stderr
    report = {r["agent"]: r for r in json.loads(result.stdout)["agents"]}
    assert report["a1"]["status"] == "skipped" and "gists" not in report["a1"]
    assert report["a2"]["status"] == report["a3"]["status"] == "ok"
    assert rows(store_path)["a1"] == done_a1
    assert not (store_path / JOURNAL).exists()  # the run completed


def test_a_changed_policy_starts_a_new_run(store_path: Path, summarizer: Path) -> None:
    populate(store_path, {"a1": "tea"})
    (store_path / JOURNAL).write_text(json.dumps({"key": "another run", "done": ["a1"]}))
    result = invoke(store_path, "--all", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["agents"][0]["status"] == "ok"


def test_another_writer_holding_the_lock_is_reported(store_path: Path) -> None:
    populate(store_path, {"a1": "tea"})
    with MemoryEngine.open(store_path, embedder="hashing"):
        result = invoke(store_path, "--all")
    assert result.exit_code == 4
    assert "open for writing in another process" in result.stderr
    assert "run this command again" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "either --all or"),
        (["--all", "--agent", "a1"], 2, "either --all or"),
        (["--all", "--policy", "/nonexistent/policy.toml"], 2, "cannot read policy file"),
    ],
)
def test_bad_arguments_are_usage_errors(
    store_path: Path, args: list[str], code: int, message: str
) -> None:
    populate(store_path, {"a1": "tea"})
    result = invoke(store_path, *args)
    assert result.exit_code == code
    assert message in result.stderr


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nothing-here", "--all")
    assert result.exit_code == 3
    assert "no store" in result.stderr
    assert not (tmp_path / "nothing-here").exists()
