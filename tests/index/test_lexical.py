"""The lexical index: BM25 on FTS5, context columns, and queries that never raise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from engramdb.index import lexical
from engramdb.index.lexical import LexicalIndex, query_terms, tokens
from engramdb.index.lexicon import AgentLexicon
from engramdb.records import Memory, MemoryKind, new_id


@pytest.fixture
def ix() -> LexicalIndex:
    index = LexicalIndex()
    index.upsert(
        [
            (1, "Ana adopted a tabby cat in 2023", ""),
            (2, "Bo went running in the park", "Ana asked about the marathon"),
            (3, "Café au lait every morning", ""),
            (4, "They were walking the dogs", ""),
            (5, "nothing to see", ""),
        ]
    )
    return index


def test_a_rare_word_is_found(ix: LexicalIndex) -> None:
    scores, labels = ix.search("tabby", k=5)
    assert labels.tolist() == [1] and scores[0] > 0


def test_stemming_numbers_and_diacritics(ix: LexicalIndex) -> None:
    assert ix.search("run", k=5)[1].tolist() == [2]
    assert ix.search("dog walks", k=5)[1].tolist() == [4]
    assert ix.search("2023", k=5)[1].tolist() == [1]
    assert ix.search("cafe", k=5)[1].tolist() == [3]


def test_context_counts_at_its_weight(ix: LexicalIndex) -> None:
    assert ix.search("marathon", k=5)[1].tolist() == [2]
    assert ix.search("marathon", k=5, weights=(1.0, 0.0))[0][0] == 0.0


def test_upsert_replaces_and_remove_forgets(ix: LexicalIndex) -> None:
    ix.upsert([(1, "a parrot now", "")])
    assert ix.search("tabby", k=5)[1].size == 0
    assert ix.search("parrot", k=5)[1].tolist() == [1]
    ix.remove([1, 99])
    assert ix.search("parrot", k=5)[1].size == 0
    assert len(ix) == 4


def test_allowed_filters_before_top_k(ix: LexicalIndex) -> None:
    ix.upsert([(i, f"the same words {i}", "") for i in range(10, 60)])
    allowed = np.zeros(61, dtype=bool)
    allowed[[11, 57]] = True
    assert sorted(ix.search("same words", k=2, allowed=allowed)[1].tolist()) == [11, 57]


WEIRD = [
    "",
    "   ",
    "?!?",
    "the and of to",
    'say "hello',
    "cat*",
    "*",
    "-cat",
    "NEAR(cat tabby)",
    "cat AND dog",
    "OR OR OR",
    "(cat",
    "own:cat",
    "^cat",
    "a'b'c'''",
    "日本語のテキスト",
    "emoji 🐱 cat",
    "\x00 null byte",
    "cat;DROP TABLE docs;--",
    "x" * 5000,
]


@pytest.mark.parametrize("query", WEIRD)
def test_weird_queries_never_raise(ix: LexicalIndex, query: str) -> None:
    scores, labels = ix.search(query, k=5)
    assert scores.shape == labels.shape
    assert len(ix) == 5


def test_stop_words_alone_find_nothing(ix: LexicalIndex) -> None:
    for query in ["", "the and of", "?!", "What did you do?"]:
        assert ix.search(query, k=5)[1].size == 0


def test_query_terms() -> None:
    assert query_terms("When did Caroline's dog go?") == ["caroline", "dog", "go"]
    assert query_terms("don't I've") == []
    assert query_terms('a "quoted" NEAR(x)') == ["quoted", "near", "x"]
    assert tokens("Ana's dogs, 2023") == ["ana", "s", "dog", "2023"]


def test_stale_postings_are_dropped_and_scores_stay_the_same() -> None:
    ix = LexicalIndex()
    ix.upsert([(i, f"note {i} about the tabby cat", "") for i in range(50)])
    before = ix.search("tabby", k=5)
    for _ in range(60):  # rewrite every document: stale postings pile up, then go
        ix.upsert([(i, f"note {i} about the tabby cat", "") for i in range(50)])
    after = ix.search("tabby", k=5)
    assert after[1].tolist() == before[1].tolist()
    assert after[0] == pytest.approx(before[0])
    assert ix._stale < 50 * 6


def test_a_stale_posting_never_matches_again_when_generations_wrap() -> None:
    # Generations are 16 bits. One document re-indexed 2**15 times (two generations
    # each) among many live postings leaves its first words stale without a
    # size-triggered compaction; they must not come back.
    ix = LexicalIndex()
    ix.upsert([(i, f"plain note {i}", "") for i in range(1, 40_000)])
    ix.upsert([(0, "zebra", ""), (40_000, "a zebra too", "")])
    for _ in range(1 << 15):
        ix.upsert([(0, "alpha", "")])
    assert ix.search("zebra", k=5)[1].tolist() == [40_000]
    assert ix.scores("zebra", np.array([0, 40_000]))[0] == 0.0
    assert ix.search("alpha", k=5)[1].tolist() == [0]


@pytest.mark.parametrize("seed", range(3))
def test_wrapping_generations_match_a_fresh_index(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # With generations of two bits, a stale posting would match again within a few
    # re-indexings; after every step the index must agree with one built afresh.
    monkeypatch.setattr(lexical, "_GEN_WRAP", 4)
    rng = np.random.default_rng(seed)
    words = ["red", "green", "blue", "cyan", "pink", "gold"]
    ix = LexicalIndex()
    ix.upsert([(100 + i, f"filler{i} filler", "") for i in range(100)])
    docs: dict[int, tuple[str, str]] = {100 + i: (f"filler{i} filler", "") for i in range(100)}
    for _ in range(200):
        label = int(rng.integers(0, 12))
        if rng.random() < 0.25:
            ix.remove([label])
            docs.pop(label, None)
        else:
            own = " ".join(rng.choice(words, size=int(rng.integers(1, 4))))
            ctx = " ".join(rng.choice(words, size=int(rng.integers(0, 3))))
            ix.upsert([(label, own, ctx)])
            docs[label] = (own, ctx)
        fresh = LexicalIndex()
        fresh.upsert([(lab, own, ctx) for lab, (own, ctx) in docs.items()])
        query = " ".join(rng.choice(words, size=2))
        every = np.arange(12)
        assert ix.scores(query, every) == pytest.approx(fresh.scores(query, every), rel=1e-6)
        assert sorted(ix.search(query, k=20)[1].tolist()) == sorted(
            fresh.search(query, k=20)[1].tolist()
        )


def test_a_label_twice_in_one_batch_keeps_its_last_document() -> None:
    ix = LexicalIndex()
    ix.upsert([(1, "apple pie", ""), (2, "plain bread", ""), (1, "cherry tart", "")])
    assert len(ix) == 2
    assert ix.search("apple", k=5)[1].tolist() == []
    assert ix.search("cherry", k=5)[1].tolist() == [1]
    ix.remove([1])
    assert ix.search("cherry apple", k=5)[1].tolist() == []
    assert ix.search("bread", k=5)[1].tolist() == [2]


def test_term_ids_widen_past_a_16_bit_vocabulary() -> None:
    ix = LexicalIndex()
    ix.upsert([(1, "shared " + " ".join(f"w{i}" for i in range(70_000)), "")])
    ix.upsert([(2, "shared w69999 rarest", ""), (3, "shared w5", "")])
    assert len(ix._terms) > 1 << 16
    assert ix.search("rarest", k=5)[1].tolist() == [2]
    ix.remove([2])  # its term ids (past 2**16) are read back to update the counts
    assert ix.search("rarest", k=5)[1].tolist() == []
    assert int(ix._df.data[ix._terms["w69999"]]) == 1
    assert sorted(ix.search("w69999 w5", k=5)[1].tolist()) == [1, 3]


def test_term_counts_saturate_in_16_bits() -> None:
    ix = LexicalIndex()
    ix.upsert([(1, "echo " * 70_000, ""), (2, "echo " * 65_535, ""), (3, "other words", "")])
    scores, labels = ix.search("echo", k=5)
    assert sorted(labels.tolist()) == [1, 2]
    assert np.isfinite(scores).all() and (scores > 0).all()


def _turn(text: str, session: str | None, at: datetime) -> Memory:
    return Memory(
        id=new_id(at),
        agent="a",
        kind=MemoryKind.EPISODIC,
        text=text,
        session=session,
        created_at=at,
        updated_at=at,
    )


def test_context_is_the_previous_turns_of_the_session_and_follows_deletes() -> None:
    lex = AgentLexicon(context_turns=2)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    turns = [
        _turn(t, "s", t0 + timedelta(minutes=i))
        for i, t in enumerate(["Did you visit Lisbon?", "We ate pastries", "Yes, last week!"])
    ]
    other = _turn("Lisbon trams are yellow", "u", t0)
    lex.add([*turns, other], [0, 1, 2, 3], [0, 0, 0, 1])
    # "Yes, last week!" is found through its context, two turns back.
    assert 2 in lex.memories.search("lisbon", k=5)[1].tolist()
    lex.remove([turns[0]], [0])
    assert lex.memories.search("lisbon", k=5)[1].tolist() == [3]
    scores = lex.session_scores("pastries", np.array([0, 1]))
    assert scores[0] > 0 and scores[1] == 0
