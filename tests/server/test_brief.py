"""The brief: sections in order, each memory once, within budget, deterministic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from engramdb import MemoryEngine
from engramdb.engine.brief import SECTIONS, build_brief, estimate_tokens, token_counter
from engramdb.errors import ValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(engine: MemoryEngine) -> None:
    items: list[dict[str, Any]] = [
        {"text": "Always answer in French", "kind": "procedural", "importance": 0.9},
        {"text": "Never share the user's address", "kind": "procedural", "importance": 1.0},
        {"text": "Sign off politely", "kind": "procedural", "importance": 0.2},
        {"text": "The user lives in Lisbon", "kind": "semantic", "importance": 0.4},
        {"text": "The user's cat is called Miso", "kind": "semantic", "importance": 0.9},
        {"text": "Draft: reply about the Lisbon flat", "kind": "working", "session": "s1"},
        {"text": "Draft for another session", "kind": "working", "session": "s2"},
    ]
    items += [
        {"text": f"Episode {i}: talked about topic {i}", "created_at": T0 + timedelta(days=i)}
        for i in range(30)
    ]
    engine.add_many(items, agent="bot")


def test_sections_in_order_each_memory_once(engine: MemoryEngine) -> None:
    _fill(engine)
    brief = build_brief(engine, agent="bot", session="s1", query="where does the user live")
    text = brief.text
    titles = ["## Working memory", "## Instructions", "## Knowledge", "## Recent episodes"]
    positions = [text.index(t) for t in titles]
    assert positions == sorted(positions)
    ids = [m.id for m in brief.memories]
    assert len(ids) == len(set(ids))
    assert list(brief.sections) == list(SECTIONS)
    assert [i for s in SECTIONS for i in brief.sections[s]] == ids
    assert "Draft: reply about the Lisbon flat" in text and "another session" not in text
    knowledge = [m.text for m in brief.memories if m.id in brief.sections["knowledge"]]
    assert knowledge[0] == "The user lives in Lisbon"  # relevance beats importance
    instructions = [m.text for m in brief.memories if m.id in brief.sections["instructions"]]
    assert instructions[0] == "Never share the user's address"
    episodes = [m.text for m in brief.memories if m.id in brief.sections["episodes"]]
    assert episodes[0].startswith("Episode 29")  # newest first


def test_without_query_knowledge_is_by_importance_and_no_session_no_working(
    engine: MemoryEngine,
) -> None:
    _fill(engine)
    brief = build_brief(engine, agent="bot")
    knowledge = [m.text for m in brief.memories if m.id in brief.sections["knowledge"]]
    assert knowledge[0] == "The user's cat is called Miso"
    assert brief.sections["working"] == ()
    assert "## Working memory" not in brief.text


@pytest.mark.parametrize("budget", [15, 40, 120, 400, 1500])
def test_within_budget(engine: MemoryEngine, budget: int) -> None:
    _fill(engine)
    brief = build_brief(engine, agent="bot", session="s1", query="cat", budget_tokens=budget)
    assert brief.tokens <= budget
    assert brief.tokens == estimate_tokens(brief.text)
    if budget >= 400:
        # spare budget flows on: episodes take more than their 20% share
        assert len(brief.sections["episodes"]) > 10


def test_deterministic_and_leaves_access_counts_alone(engine: MemoryEngine) -> None:
    _fill(engine)
    before = [m.access_count for m in engine.list(agent="bot", limit=None)]
    first = build_brief(engine, agent="bot", session="s1", query="Lisbon", budget_tokens=300)
    second = build_brief(engine, agent="bot", session="s1", query="Lisbon", budget_tokens=300)
    assert first == second
    assert [m.access_count for m in engine.list(agent="bot", limit=None)] == before


def test_empty_agent_gets_an_empty_brief(engine: MemoryEngine) -> None:
    brief = build_brief(engine, agent="nobody", query="anything")
    assert (brief.text, brief.memories, brief.tokens) == ("", (), 0)


@pytest.mark.parametrize("budget", [0, -5, 10**9, True, 1.5])
def test_bad_budget(engine: MemoryEngine, budget: Any) -> None:
    with pytest.raises(ValidationError, match="budget_tokens"):
        build_brief(engine, agent="bot", budget_tokens=budget)


def test_token_counter_prefers_the_embedders_tokenizer() -> None:
    def tokenizer(text: str, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": list(range(len(text)))}  # one token per character

    with_model = SimpleNamespace(model=SimpleNamespace(tokenizer=tokenizer))
    assert token_counter(with_model)("abcd") == 4
    assert token_counter(SimpleNamespace())("two words") == estimate_tokens("two words") == 3


@pytest.mark.model
def test_budget_counted_with_the_minilm_tokenizer(tmp_path: Any, minilm: Any) -> None:
    with MemoryEngine.open(tmp_path / "m", embedder=minilm) as engine:
        _fill(engine)
        brief = build_brief(engine, agent="bot", session="s1", query="cat", budget_tokens=60)
        tokenizer = minilm.model.tokenizer
        counted = len(tokenizer(brief.text, add_special_tokens=False)["input_ids"])
        assert brief.tokens == counted <= 60
        assert counted != estimate_tokens(brief.text)  # the tokenizer, not the estimate
