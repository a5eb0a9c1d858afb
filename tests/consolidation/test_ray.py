"""The consolidation job on Ray: the local pass's result, crash safety, a clear error without Ray.

One local Ray (two CPUs) serves the module: starting one costs seconds and
hundreds of MB. Its workers inherit ``PYTHONPATH`` with a hooks module whose
summarizer kills its worker (``os._exit``) for the memories of one agent while
a flag file exists: a task that dies mid-way, as a lost node would.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
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
WORDS = "alpha beta gamma delta river stone cloud maple violet copper".split()

HOOKS = """
import os
from pathlib import Path

FLAG = Path(__file__).with_name("crash.flag")
ONCE = Path(__file__).with_name("once.flag")

def summarize(texts):
    if FLAG.exists() and any("crash" in t for t in texts):
        os._exit(1)  # the worker dies mid-task, as on a lost node
    if any("once" in t for t in texts) and ONCE.exists():
        ONCE.unlink()
        os._exit(1)  # dies the first time only: Ray's retry finishes it
    return "Summary: " + texts[0]
"""


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with the hooks module, on the path of this process and of Ray's workers."""
    where = tmp_path_factory.mktemp("ray-hooks")
    (where / "ray_test_hooks.py").write_text(HOOKS)
    sys.path.insert(0, str(where))
    yield where
    sys.path.remove(str(where))
    sys.modules.pop("ray_test_hooks", None)


@pytest.fixture(scope="module")
def ray_cluster(hooks: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Ray for the module; the job finds it running and uses it."""
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed: pip install 'engramdb[ray]' (make test installs it)"
    )
    from engramdb.consolidation.ray_job import ray_session

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hooks), saved]))
    try:
        with ray_session(num_cpus=2):  # started here, so stopped here
            yield ray
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def populate(root: Path, agents: list[str], per_agent: int = 120) -> None:
    """Each agent: near-duplicate pairs (case variants) and old episodes that cluster."""
    rng = np.random.default_rng(0)
    with MemoryEngine.open(root, embedder="hashing") as engine:
        for agent in agents:
            items = []
            for i in range(per_agent):
                words = " ".join(rng.choice(WORDS, size=3))
                text = words.upper() if i % 3 == 0 else words
                items.append(
                    {"text": f"{agent} {text} {i % 40}", "created_at": T0 + timedelta(hours=6 * i)}
                )
            engine.add_many(items, agent=agent)


def canonical(root: Path) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every agent's memory up to the ids and times a pass makes up."""
    out = {}
    with MemoryEngine.open(root, embedder="hashing", read_only=True) as engine:
        for agent in engine.agents():
            stored = {m.id: m for m in engine.list(agent=agent, limit=None, include_archived=True)}
            vectors = engine.store.scan_agent(agent, columns=["id", "vector"]).to_pydict()
            vector = dict(zip(vectors["id"], vectors["vector"], strict=True))
            out[agent] = Counter(
                (
                    m.text,
                    m.kind.value,
                    m.status.value,
                    m.importance,
                    m.access_count,
                    m.created_at,
                    tuple(sorted(m.metadata.items())),
                    tuple(sorted(stored[s].text for s in m.source_ids if s in stored)),
                    stored[m.parent_id].text if m.parent_id in stored else None,
                    tuple(round(x, 6) for x in vector[m.id]),
                )
                for m in stored.values()
            )
    return out


@pytest.mark.slow
def test_agents_consolidated_on_ray_match_the_local_pass(tmp_path: Path, ray_cluster: Any) -> None:
    from engramdb.consolidation.ray_job import consolidate_on_ray

    local, remote = tmp_path / "local", tmp_path / "remote"
    populate(local, ["ann", "bob", "cyd"])
    shutil.copytree(local, remote)
    before = canonical(remote)
    with MemoryEngine.open(local, embedder="hashing") as engine:
        expected = engine.consolidate()
    with MemoryEngine.open(remote, embedder="hashing") as engine:
        got = consolidate_on_ray(engine)
        assert [r.agent for r in got] == ["ann", "bob", "cyd"]
        for mine, theirs in zip(got, expected, strict=True):
            assert (mine.before, mine.after, mine.gists, mine.groups_merged) == (
                theirs.before,
                theirs.after,
                theirs.gists,
                theirs.groups_merged,
            )
        assert consolidate_on_ray(engine).changed is False  # a second pass changes nothing
    after = canonical(remote)
    assert after == canonical(local)
    assert all(after[a] != before[a] for a in after)  # the pass had work in every agent


@pytest.mark.slow
def test_a_task_killed_midway_leaves_its_agent_and_a_rerun_finishes(
    tmp_path: Path, hooks: Path, ray_cluster: Any
) -> None:
    store, expected = tmp_path / "store", tmp_path / "expected"
    populate(store, ["ann", "bob-crash", "cyd-once"])
    shutil.copytree(store, expected)
    policy = tmp_path / "policy.toml"
    policy.write_text('summarize = "ray_test_hooks:summarize"\n\n[forget]\nenabled = false\n')
    with MemoryEngine.open(expected, embedder="hashing") as engine:
        engine.consolidate(
            policy={"summarize": "ray_test_hooks:summarize", "forget": {"enabled": False}}
        )
    want, before = canonical(expected), canonical(store)
    args = ["consolidate", "--all", "--store", str(store), "--policy", str(policy)]

    (hooks / "crash.flag").touch()
    (hooks / "once.flag").touch()
    try:
        first = runner.invoke(app, [*args, "--executor", "ray", "--json"])
    finally:
        (hooks / "crash.flag").unlink()
    assert first.exit_code == 1, first.output
    assert not (hooks / "once.flag").exists()  # cyd-once's first worker did die
    now = canonical(store)
    assert now["bob-crash"] == before["bob-crash"]  # its task died twice: nothing written
    assert now["ann"] == want["ann"] and now["cyd-once"] == want["cyd-once"]  # retried
    assert "bob-crash failed" in first.stderr and "WorkerCrashedError" in first.stderr
    assert (store / JOURNAL).exists()

    second = runner.invoke(app, [*args, "--executor", "ray"])
    assert second.exit_code == 0, second.output
    assert "skipped" in second.stdout and "resuming" in second.stderr
    assert canonical(store) == want
    assert not (store / JOURNAL).exists()


@pytest.mark.slow
def test_a_store_on_object_storage_is_consolidated_on_ray(
    tmp_path: Path, ray_cluster: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers open the s3:// store with the options the engine was opened with."""
    from engramdb.consolidation.ray_job import consolidate_on_ray

    monkeypatch.setenv("ENGRAMDB_FOLLOW_INTERVAL", "0")
    local, remote = tmp_path / "local", s3.fresh()
    monkeypatch.setenv("ENGRAMDB_STORAGE_OPTIONS", json.dumps(s3.options))
    populate(local, ["ann", "bob"])
    populate(remote, ["ann", "bob"])  # type: ignore[arg-type]
    with MemoryEngine.open(local, embedder="hashing") as engine:
        engine.consolidate()
    # The workers get the options from the engine's location, not from the environment.
    monkeypatch.delenv("ENGRAMDB_STORAGE_OPTIONS")
    with MemoryEngine.open(remote, embedder="hashing", storage_options=s3.options) as engine:
        got = consolidate_on_ray(engine)
        assert [r.agent for r in got] == ["ann", "bob"] and all(r.changed for r in got)
    monkeypatch.setenv("ENGRAMDB_STORAGE_OPTIONS", json.dumps(s3.options))
    assert canonical(remote) == canonical(local)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_failing_agent_raises_after_the_others_are_committed(
    tmp_path: Path, ray_cluster: Any
) -> None:
    from engramdb.consolidation.ray_job import consolidate_on_ray
    from engramdb.errors import ValidationError

    store = tmp_path / "store"
    populate(store, ["ann", "bob-poison"])
    before = canonical(store)

    def summarize(texts: list[str]) -> str:  # local: Ray ships it by value
        return "" if any("poison" in t for t in texts) else "Summary: " + texts[0]

    with MemoryEngine.open(store, embedder="hashing") as engine:
        with pytest.raises(ValidationError, match="summarize returned") as caught:
            consolidate_on_ray(engine, policy={"summarize": summarize})
    assert "1 of 2 agent(s) failed" in "".join(caught.value.__notes__)
    after = canonical(store)
    assert after["bob-poison"] == before["bob-poison"]
    assert after["ann"] != before["ann"]


def test_without_ray_the_ray_executor_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    populate(store, ["ann"], per_agent=10)
    before = canonical(store)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = runner.invoke(
        app, ["consolidate", "--all", "--store", str(store), "--executor", "ray"]
    )
    assert result.exit_code == 2
    assert "pip install 'engramdb[ray]'" in result.stderr
    assert canonical(store) == before


def test_ray_options_need_the_ray_executor(tmp_path: Path) -> None:
    store = tmp_path / "store"
    populate(store, ["ann"], per_agent=10)
    result = runner.invoke(app, ["consolidate", "--all", "--store", str(store), "--num-cpus", "2"])
    assert result.exit_code == 2
    assert "--executor ray" in result.stderr
