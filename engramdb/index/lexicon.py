"""An agent's lexical side: memory documents with their context, and session documents.

See :mod:`engramdb.index.lexical` for the BM25 index both are kept in.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence

import numpy as np

from engramdb._types import FloatMatrix, IntArray
from engramdb.index.columns import Column
from engramdb.index.lexical import DEFAULT_CONTEXT_TURNS, LexicalIndex
from engramdb.records import Memory, MemoryKind

__all__ = ["AgentLexicon"]


class AgentLexicon:
    """An agent's lexical side: memory documents with context, and session documents.

    Keeps, per session, the episodic memories in order (``created_at``, then id),
    so a memory added, changed or removed re-indexes only the memories whose
    context it is part of (the next ``context_turns`` of its session) and its
    session's document. The order is kept as arrays of labels, and texts, ids
    and times by label: no Python object per memory beyond what the view holds.

    Args:
        context_turns: Previous episodic memories of the session in a memory's context.
        weights: BM25 weights of a memory's own text and of its context.
        shared: The owner's ids, texts and creation times (POSIX seconds) by label,
            read instead of copies: the owner writes a memory's before :meth:`add`
            and clears them only after :meth:`remove`. Without it the lexicon keeps
            its own.
    """

    def __init__(
        self,
        *,
        context_turns: int = DEFAULT_CONTEXT_TURNS,
        weights: tuple[float, float] = (1.0, 0.5),
        shared: tuple[list[str | None], list[str | None], Column] | None = None,
    ) -> None:
        self.context_turns = context_turns
        self.memories = LexicalIndex(weights=weights)
        self.sessions = LexicalIndex(weights=(1.0, 0.0))
        self._order: dict[str, array[int]] = {}
        """Session -> the labels of its episodic memories, in order."""
        self._owned = shared is None
        self._ids: list[str | None]
        self._text: list[str | None]
        if shared is None:
            self._ids, self._text, self._created = [], [], Column(np.float64)
        else:
            self._ids, self._text, self._created = shared
        self._ordered = Column(np.bool_)
        """Whether a label is in its session's order."""
        self._session_code: dict[str, int] = {}

    def _key(self, label: int) -> tuple[float, str]:
        return float(self._created.data[label]), self._ids[label] or ""

    def _keep(self, m: Memory, label: int) -> None:
        if label >= self._ordered.n:
            self._ordered.extend(np.zeros(label + 1 - self._ordered.n, np.bool_))
        if not self._owned:
            return  # the owner has written them
        if label >= len(self._text):
            extra = label + 1 - len(self._text)
            self._text.extend([None] * extra)
            self._ids.extend([None] * extra)
            self._created.extend(np.zeros(extra, np.float64))
        self._text[label] = m.text
        self._ids[label] = m.id
        self._created.data[label] = m.created_at.timestamp()

    def add(self, memories: Sequence[Memory], labels: Sequence[int], codes: Sequence[int]) -> None:
        """Index new memories (``codes`` are their session codes in the agent view)."""
        touched: dict[str, set[int]] = {}
        docs: list[tuple[int, str, str]] = []
        for m, label, code in zip(memories, labels, codes, strict=True):
            self._keep(m, label)
            if m.session is None or m.kind is not MemoryKind.EPISODIC:
                docs.append((label, m.text, ""))
                continue
            self._session_code[m.session] = code
            order = self._order.setdefault(m.session, array("q"))
            bisect.insort(order, label, key=self._key)
            self._ordered.data[label] = True
            touched.setdefault(m.session, set()).add(label)
        self.memories.upsert(docs)
        self._reindex(touched)

    def remove(self, memories: Sequence[Memory], labels: Sequence[int]) -> None:
        """Forget memories that left the view."""
        touched: dict[str, set[int]] = {}
        for m, label in zip(memories, labels, strict=True):
            session = m.session
            known = label < self._ordered.n
            if known and self._ordered.data[label] and session is not None:
                order = self._order[session]
                at = bisect.bisect_left(order, self._key(label), key=self._key)
                order.pop(at)
                # The memories that followed it now have another context.
                follow = touched.setdefault(session, set())
                follow.update(order[at : at + self.context_turns])
            if known:
                self._ordered.data[label] = False
            if self._owned and label < len(self._text):
                self._text[label] = None
                self._ids[label] = None
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
                if self._ordered.data[label]:
                    i = bisect.bisect_left(order, self._key(label), key=self._key)
                    redo.update(range(i, min(i + self.context_turns + 1, len(order))))
            for i in sorted(redo):
                before = order[max(0, i - self.context_turns) : i]
                context = " ".join(self._text[x] or "" for x in before)
                docs.append((order[i], self._text[order[i]] or "", context))
            whole = " ".join(self._text[x] or "" for x in order)
            session_docs.append((self._session_code[session], whole, ""))
            if not order:
                self.sessions.remove([self._session_code[session]])
        self.memories.upsert(docs)
        self.sessions.upsert([d for d in session_docs if d[1]])

    def trim(self) -> None:
        """Drop the arrays' spare capacity (after a bulk build)."""
        self.memories.trim()
        self.sessions.trim()
        if self._owned:
            self._created.trim()
        self._ordered.trim()

    def nbytes(self) -> int:
        """The bytes of both indexes' arrays and of the session order (not the texts)."""
        order = sum(8 * len(labels) for labels in self._order.values())
        arrays = self._ordered.data.nbytes + (self._created.data.nbytes if self._owned else 0)
        return self.memories.nbytes() + self.sessions.nbytes() + order + arrays

    def session_scores(self, query: str, codes: IntArray) -> FloatMatrix:
        """BM25 of each given session's document for ``query``, aligned with ``codes``
        (0 where it does not match).

        Only the given sessions are scored; every query term counts, the terms in
        most session documents too (as for a search over all sessions).
        """
        return self.sessions.scores(query, codes)
