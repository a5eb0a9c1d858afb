"""Lexical (BM25) indexes over one agent's memories, on SQLite FTS5.

Why FTS5: it ships with Python's ``sqlite3`` (no new dependency), updates
incrementally and transactionally (a memory added, changed or removed is one
statement, where bm25s must rebuild), ranks by BM25 with per-column weights, and
stems English with its ``porter`` tokenizer. tantivy is faster at scale but a
native dependency; LanceDB's own full-text index is rebuilt, not updated, on
write. Like the FAISS index, the lexical index is derived data held in memory
and rebuilt from the store of record whenever an agent's view is built, so it
can never be out of step with the store after a crash.

Two indexes per agent (see :class:`AgentLexicon`):

- one document per memory, with two columns: the memory's own text and its
  *context*, the texts of the previous episodic memories of the same session
  (a conversational answer, "Yes, last week!", shares no word with the question
  that finds it, but the turn before it does);
- one document per session (every episodic memory of it), a session prior.

Tokenisation: ``porter unicode61 remove_diacritics 2`` on both sides (stemming,
numbers kept, accents folded). Queries are reduced to content words
(lower-cased, punctuation dropped, English stop words dropped), each quoted and
OR-ed, so no user text reaches FTS5's query syntax: quotes, ``*``, ``-``,
``NEAR`` or parentheses never raise, and a query of stop words finds nothing.
A name that is every turn's speaker is in every document, so BM25's IDF gives it
next to no weight; nothing names-specific is needed.

Example:
    >>> ix = LexicalIndex()
    >>> ix.upsert([(1, 'Ana said, "I adopted a cat"', ""), (2, 'Bo said, "Nice day"', "")])
    >>> scores, labels = ix.search("Who adopted a cat?", k=5)
    >>> labels.tolist()
    [1]
"""

from __future__ import annotations

import bisect
import re
import sqlite3
from collections.abc import Iterable, Sequence

import numpy as np

from engramdb._types import BoolArray, FloatMatrix, IntArray
from engramdb.records import Memory, MemoryKind

__all__ = ["STOP_WORDS", "AgentLexicon", "LexicalIndex", "fts_query", "query_terms"]

STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out
    over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's will with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves s t d ll m re ve also just like ever
    """.split()
)
"""English stop words, dropped from queries only (documents keep every token)."""

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
"""A word: letters and digits, with at most one inner apostrophe (don't, Ana's)."""
_TOKENIZER = "porter unicode61 remove_diacritics 2"

DEFAULT_CONTEXT_TURNS = 2
"""Previous episodic memories of the same session that form a memory's context."""


def query_terms(query: str, stop_words: frozenset[str] = STOP_WORDS) -> list[str]:
    """A query's content words: lower-cased, stop words dropped, once each, in order.

    A possessive or clitic (``Ana's``, ``don't``) is tested whole against the stop
    words and otherwise kept as its stem, so it matches the bare word.

    >>> query_terms('When did Ana\\'s dog ("Rex") go to the vet?')
    ['ana', 'dog', 'rex', 'go', 'vet']
    """
    out: dict[str, None] = {}
    for match in _WORD.finditer(query.lower()):
        word = match.group(0)
        if word in stop_words:
            continue
        word = word.split("'", 1)[0]
        if word and word not in stop_words:
            out[word] = None
    return list(out)


def fts_query(terms: Sequence[str]) -> str:
    """An FTS5 ``MATCH`` expression OR-ing the terms, each a quoted string.

    >>> fts_query(["near", "and"])
    '"near" OR "and"'
    """
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


class LexicalIndex:
    """BM25 over (own text, context) documents keyed by int64 label, in an in-memory FTS5 table.

    Not locked: the engine holds its lock around every call.

    Args:
        weights: BM25 column weights (own text, context).
    """

    def __init__(self, *, weights: tuple[float, float] = (1.0, 0.5)) -> None:
        self.weights = (float(weights[0]), float(weights[1]))
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            f"CREATE VIRTUAL TABLE docs USING fts5(own, ctx, tokenize = '{_TOKENIZER}')"
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM docs").fetchone()[0])

    def upsert(self, docs: Iterable[tuple[int, str, str]]) -> None:
        """Insert or replace documents ``(label, own text, context)``."""
        rows = [(int(label), own, ctx) for label, own, ctx in docs]
        if rows:
            with self._db:
                self._db.executemany("DELETE FROM docs WHERE rowid = ?", [(r[0],) for r in rows])
                self._db.executemany("INSERT INTO docs (rowid, own, ctx) VALUES (?, ?, ?)", rows)

    def remove(self, labels: Iterable[int]) -> None:
        rows = [(int(x),) for x in labels]
        if rows:
            with self._db:
                self._db.executemany("DELETE FROM docs WHERE rowid = ?", rows)

    def search(
        self,
        query: str,
        k: int,
        allowed: BoolArray | None = None,
        *,
        weights: tuple[float, float] | None = None,
    ) -> tuple[FloatMatrix, IntArray]:
        """The best ``k`` documents by BM25 (higher is better), among ``allowed`` labels.

        A filter is applied to FTS5's ranking in rounds of growing depth, so when
        ``k`` allowed documents match, ``k`` come back. ``weights`` overrides the
        column weights for this query.
        """
        empty = (np.zeros(0, np.float32), np.zeros(0, np.int64))
        terms = query_terms(query)
        if k <= 0 or not terms:
            return empty
        sql = (
            "SELECT rowid, bm25(docs, ?, ?) AS s FROM docs WHERE docs MATCH ? "
            "ORDER BY s, rowid LIMIT ?"
        )
        match = fts_query(terms)
        limit = k if allowed is None else 4 * k
        while True:
            rows = self._db.execute(sql, (*(weights or self.weights), match, limit)).fetchall()
            if allowed is not None:
                kept = [r for r in rows if r[0] < len(allowed) and allowed[r[0]]]
            else:
                kept = rows
            if len(kept) >= k or len(rows) < limit:
                break
            limit *= 4
        kept = kept[:k]
        if not kept:
            return empty
        labels = np.fromiter((r[0] for r in kept), np.int64, len(kept))
        # FTS5's bm25() is lower-is-better and negative; negate for higher-is-better.
        scores = np.fromiter((-r[1] for r in kept), np.float64, len(kept))
        return scores.astype(np.float32), labels


class AgentLexicon:
    """An agent's lexical side: memory documents with context, and session documents.

    Keeps, per session, the episodic memories in order (``created_at``, then id),
    so a memory added, changed or removed re-indexes only the memories whose
    context it is part of (the next ``context_turns`` of its session) and its
    session's document.

    Args:
        context_turns: Previous episodic memories of the session in a memory's context.
        weights: BM25 weights of a memory's own text and of its context.
    """

    def __init__(
        self,
        *,
        context_turns: int = DEFAULT_CONTEXT_TURNS,
        weights: tuple[float, float] = (1.0, 0.5),
    ) -> None:
        self.context_turns = context_turns
        self.memories = LexicalIndex(weights=weights)
        self.sessions = LexicalIndex(weights=(1.0, 0.0))
        self._order: dict[str, list[tuple[float, str, int]]] = {}
        """Session -> its episodic memories as (created, id, label), in order."""
        self._text: dict[int, str] = {}
        self._entry: dict[int, tuple[float, str, int]] = {}
        self._session_code: dict[str, int] = {}

    def add(self, memories: Sequence[Memory], labels: Sequence[int], codes: Sequence[int]) -> None:
        """Index new memories (``codes`` are their session codes in the agent view)."""
        touched: dict[str, set[int]] = {}
        docs: list[tuple[int, str, str]] = []
        for m, label, code in zip(memories, labels, codes, strict=True):
            self._text[label] = m.text
            if m.session is None or m.kind is not MemoryKind.EPISODIC:
                docs.append((label, m.text, ""))
                continue
            self._session_code[m.session] = code
            order = self._order.setdefault(m.session, [])
            entry = (m.created_at.timestamp(), m.id, label)
            bisect.insort(order, entry)
            self._entry[label] = entry
            touched.setdefault(m.session, set()).add(label)
        self.memories.upsert(docs)
        self._reindex(touched)

    def remove(self, memories: Sequence[Memory], labels: Sequence[int]) -> None:
        """Forget memories that left the view."""
        touched: dict[str, set[int]] = {}
        for m, label in zip(memories, labels, strict=True):
            self._text.pop(label, None)
            entry = self._entry.pop(label, None)
            session = m.session
            if entry is None or session is None:
                continue
            order = self._order[session]
            at = bisect.bisect_left(order, entry)
            order.pop(at)
            # The memories that followed it now have another context.
            follow = touched.setdefault(session, set())
            follow.update(e[2] for e in order[at : at + self.context_turns])
        self.memories.remove(labels)
        self._reindex(touched)

    def _reindex(self, touched: dict[str, set[int]]) -> None:
        """Re-index the touched memories, the ones whose context they are in, and sessions."""
        docs: list[tuple[int, str, str]] = []
        session_docs: list[tuple[int, str, str]] = []
        for session, labels in touched.items():
            order = self._order[session]
            redo: set[int] = set()
            for label in labels:
                entry = self._entry.get(label)
                if entry is not None:
                    i = bisect.bisect_left(order, entry)
                    redo.update(range(i, min(i + self.context_turns + 1, len(order))))
            for i in sorted(redo):
                before = order[max(0, i - self.context_turns) : i]
                context = " ".join(self._text[e[2]] for e in before)
                docs.append((order[i][2], self._text[order[i][2]], context))
            whole = " ".join(self._text[e[2]] for e in order)
            session_docs.append((self._session_code[session], whole, ""))
            if not order:
                self.sessions.remove([self._session_code[session]])
        self.memories.upsert(docs)
        self.sessions.upsert([d for d in session_docs if d[1]])

    def session_scores(self, query: str, codes: Iterable[int]) -> dict[int, float]:
        """BM25 of each given session's document for ``query`` (0 where it does not match)."""
        wanted = set(codes)
        if not wanted:
            return {}
        scores, found = self.sessions.search(query, len(self._session_code) + 1)
        return {int(c): float(s) for s, c in zip(scores, found, strict=True) if int(c) in wanted}
