"""Lexical (BM25) indexes over one agent's memories, held in memory.

The ranking is SQLite FTS5's ``bm25()`` with column weights, computed over
numpy postings (on a large index with the ``fast`` extra, by a compiled loop:
numba, :mod:`engramdb.index.bm25`). FTS5 itself was the first choice (standard
library, incremental, transactional) and was measured too slow for recall: it
scores matching documents one by one, 0.1-0.3 s for a query word found in a
fifth to three quarters of 100,000 memories, where numpy takes under a
millisecond.
tantivy would be as fast but adds a native search engine and filters poorly
against the engine's label masks; LanceDB's full-text index is rebuilt, not
updated, on write; bm25s cannot add documents. What this module writes by hand
is only the postings and the BM25 sum; stemming is PyStemmer's Snowball English.
Like the FAISS index, the lexical index is derived data, built from the store of
record with the agent's view and kept in step with every write, so it can never
be out of step with the store, after a crash or with a store written before it.

Two indexes per agent (see :class:`AgentLexicon`):

- one document per memory, with two columns: the memory's own text and its
  *context*, the texts of the previous episodic memories of the same session
  (a conversational answer, "Yes, last week!", shares no word with the question
  that finds it, but the turn before it does);
- one document per session (every episodic memory of it), a session prior.

Documents keep every word (folded to lower case without accents, split at
apostrophes, stemmed; numbers and names kept). Queries keep their content
words: English stop words are dropped. A name that is every turn's speaker is
in every document, so BM25's IDF gives it next to no weight; nothing
names-specific is needed.

Example:
    >>> ix = LexicalIndex()
    >>> ix.upsert([(1, 'Ana said, "I adopted a cat"', ""), (2, 'Bo said, "Nice day"', "")])
    >>> scores, labels = ix.search("Who adopted a cat?", k=5)
    >>> labels.tolist()
    [1]
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import Stemmer

from engramdb._types import BoolArray, FloatMatrix, IntArray
from engramdb.index import bm25
from engramdb.index.columns import Column

__all__ = ["DEFAULT_CONTEXT_TURNS", "STOP_WORDS", "LexicalIndex", "query_terms", "stem", "tokens"]

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
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_STEMMER = Stemmer.Stemmer("english")

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
    for match in _WORD.finditer(fold(query)):
        word = match.group(0)
        if word in stop_words:
            continue
        word = word.split("'", 1)[0]
        if word and word not in stop_words:
            out[word] = None
    return list(out)


def fold(text: str) -> str:
    """Lower case without accents (``Café`` -> ``cafe``)."""
    if text.isascii():  # the common case, and a third of indexing time otherwise
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=1 << 18)
def stem(word: str) -> str:
    """The English (Snowball) stem of a folded word; numbers and names pass through."""
    return str(_STEMMER.stemWord(word))


def tokens(text: str) -> list[str]:
    """A document's terms: folded words, split at apostrophes, stemmed; every word kept.

    >>> tokens("Ana's dogs were running in Café Lisboa, 2023!")
    ['ana', 's', 'dog', 'were', 'run', 'in', 'cafe', 'lisboa', '2023']
    """
    return [stem(w) for w in _TOKEN.findall(fold(text))]


_COUNT_MAX = np.iinfo(np.uint16).max
"""A term's count in one column of one document is kept up to this (and saturates)."""
_GEN_WRAP = 1 << 16
"""Generations stay below this: they fit 16 bits (see :meth:`LexicalIndex._bump`)."""


class _Postings:
    """One term's postings: label, document generation, and term counts per column.

    Plain arrays, no object per document: 10 bytes a posting (a 32-bit label, and
    the generation and each column's count as 16 bits).
    """

    __slots__ = ("ctx", "gen", "labels", "own")

    def __init__(self) -> None:
        self.labels = Column(np.int32)
        self.gen = Column(np.uint16)
        self.own = Column(np.uint16)
        self.ctx = Column(np.uint16)


_SLACK = 1e-9
"""Pruning keeps documents within this (relative) distance of the k-th best partial
sum: sums added in another order differ by far less."""
_BOUND_MARGIN = 1e-6
"""Relative margin on a term's bound: its parts are products of float32 numbers."""


class LexicalIndex:
    """BM25 over (own text, context) documents keyed by int64 label, in memory.

    The ranking is SQLite FTS5's ``bm25()`` with column weights (k1 = 1.2,
    b = 0.75): a term's frequency is the weighted sum of its counts in the two
    columns, a document's length is its token count over both, and an IDF at or
    below zero counts as 1e-6. Postings are numpy arrays, scored in bulk by
    max-score pruning in numpy or, with the ``fast`` extra on a large index, by a
    compiled loop (:mod:`engramdb.index.bm25`), which gives the same floats: a
    query whose terms are in a third of 100,000 documents costs 0.6-0.9 ms in
    numpy and about 0.3 ms compiled (FTS5 scores matches one by one: 0.3 s for
    one such term). A changed or removed document leaves stale postings,
    skipped by generation
    (checked only for the terms that have any) and dropped when they outnumber
    the live ones. Each document's term ids are kept in one flat array (for
    removals), so the index holds no Python object per document. Not locked:
    the engine holds its lock around every call.

    Args:
        weights: BM25 column weights (own text, context).
    """

    K1 = 1.2
    B = 0.75

    def __init__(self, *, weights: tuple[float, float] = (1.0, 0.5)) -> None:
        self.weights = (float(weights[0]), float(weights[1]))
        self._terms: dict[str, int] = {}
        self._postings: list[_Postings] = []
        self._df = Column(np.int64)
        self._stale_of = Column(np.int64)
        """Stale postings per term (0: every posting of the term is live)."""
        self._gen = Column(np.uint16)
        """Generation of each label's document (counts its re-indexings since the last
        compaction, which sets every generation back to 0)."""
        self._length = Column(np.uint32)
        """Each label's document length in tokens."""
        self._start = Column(np.int32)
        """Where each label's live document's term ids start in ``_doc_tids``; -1: none."""
        self._count = Column(np.int32)
        """How many distinct terms each label's live document has."""
        self._doc_tids = Column(np.uint16)
        """Each live document's term ids: 16 bits while the vocabulary fits, then 32."""
        self._n_docs = 0
        self._total_length = 0.0
        self._stale = 0
        self._live_postings = 0
        self._bounds: dict[int, dict[tuple[float, float], tuple[float, float]]] = {}
        """Per term and weights: its largest ``tf / (tf + norm)`` and the average length
        it was measured at (dropped when the term gets postings; numpy path only)."""
        self._norms: tuple[float, np.ndarray] | None = None
        """BM25's length norm of every label at one average length (dropped on write)."""

    def __len__(self) -> int:
        return self._n_docs

    def _term_id(self, term: str) -> int:
        tid = self._terms.get(term)
        if tid is None:
            tid = self._terms[term] = len(self._postings)
            if tid > np.iinfo(self._doc_tids.data.dtype).max:
                wide = Column(np.int32, capacity=max(len(self._doc_tids.data), 1))
                wide.extend(self._doc_tids.view)
                self._doc_tids = wide
            self._postings.append(_Postings())
            self._df.extend(np.zeros(1, np.int64))
            self._stale_of.extend(np.zeros(1, np.int64))
        return tid

    def _ensure_labels(self, label: int) -> None:
        if label >= self._gen.n:
            extra = label + 1 - self._gen.n
            self._gen.extend(np.zeros(extra, np.uint16))
            self._length.extend(np.zeros(extra, np.uint32))
            self._start.extend(np.full(extra, -1, np.int32))
            self._count.extend(np.zeros(extra, np.int32))

    def trim(self) -> None:
        """Drop the arrays' spare capacity (after a bulk build)."""
        for post in self._postings:
            for column in (post.labels, post.gen, post.own, post.ctx):
                column.trim()
        for column in (self._df, self._stale_of, self._gen, self._length, self._start):
            column.trim()
        self._count.trim()
        self._doc_tids.trim()

    def nbytes(self) -> int:
        """The bytes of the index's arrays: postings, and the columns by label and term."""
        columns = (self._df, self._stale_of, self._gen, self._length, self._start, self._count)
        posts = sum(c.data.nbytes for p in self._postings for c in (p.labels, p.gen, p.own, p.ctx))
        return posts + sum(c.data.nbytes for c in columns) + self._doc_tids.data.nbytes

    def _doc(self, label: int) -> np.ndarray | None:
        """The term ids of a label's live document (None: no document)."""
        if label >= self._start.n or self._start.data[label] < 0:
            return None
        start = int(self._start.data[label])
        return self._doc_tids.data[start : start + int(self._count.data[label])]

    def upsert(self, docs: Iterable[tuple[int, str, str]]) -> None:
        """Insert or replace documents ``(label, own text, context)``."""
        # One document per label: a label given twice keeps its last (two would
        # both be posted under its one generation, and one would outlive a removal).
        rows = list({int(r[0]): r for r in docs}.values())
        self.remove([int(r[0]) for r in rows])
        self._norms = None
        entries: list[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        for label, own, ctx in rows:
            label = int(label)
            counts: dict[int, list[float]] = {}
            own_tokens, ctx_tokens = tokens(own), tokens(ctx)
            for token in own_tokens:
                counts.setdefault(self._term_id(token), [0.0, 0.0])[0] += 1
            for token in ctx_tokens:
                counts.setdefault(self._term_id(token), [0.0, 0.0])[1] += 1
            ids = np.fromiter(counts, np.int64, len(counts))
            tf = np.array(list(counts.values()), np.float64).reshape(-1, 2)
            tf = np.minimum(tf, _COUNT_MAX).astype(np.uint16)
            self._ensure_labels(label)
            self._bump(label)
            length = len(own_tokens) + len(ctx_tokens)
            self._length.data[label] = length
            self._total_length += length
            self._start.data[label] = self._doc_tids.n
            self._count.data[label] = len(ids)
            self._doc_tids.extend(ids.astype(self._doc_tids.data.dtype))
            self._n_docs += 1
            self._df.data[ids] += 1
            self._live_postings += len(ids)
            entries.append((label, (ids, tf[:, 0], tf[:, 1])))
        self._post(entries)

    def _post(
        self, entries: Sequence[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]
    ) -> None:
        """Append the documents' postings, one append per term for the whole batch."""
        if not entries:
            return
        tids = np.concatenate([doc[0] for _, doc in entries])
        if not len(tids):
            return
        labels = np.concatenate([np.full(len(doc[0]), label) for label, doc in entries])
        own = np.concatenate([doc[1] for _, doc in entries])
        ctx = np.concatenate([doc[2] for _, doc in entries])
        gens = self._gen.data[labels]
        order = np.argsort(tids, kind="stable")
        tids, labels, gens, own, ctx = (
            tids[order],
            labels[order],
            gens[order],
            own[order],
            ctx[order],
        )
        starts = np.flatnonzero(np.r_[True, tids[1:] != tids[:-1]])
        ends = np.r_[starts[1:], len(tids)]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            self._bounds.pop(int(tids[start]), None)
            post = self._postings[int(tids[start])]
            post.labels.extend(labels[start:end])
            post.gen.extend(gens[start:end])
            post.own.extend(own[start:end])
            post.ctx.extend(ctx[start:end])

    def remove(self, labels: Iterable[int]) -> None:
        """Forget documents by label (unknown labels are ignored)."""
        self._norms = None
        for label in labels:
            label = int(label)
            if self._doc(label) is None:
                continue
            self._bump(label)  # its postings no longer match: stale (may compact first)
            ids = self._doc(label)
            assert ids is not None
            self._df.data[ids] -= 1
            self._stale_of.data[ids] += 1
            self._start.data[label] = -1
            self._n_docs -= 1
            self._total_length -= float(self._length.data[label])
            self._stale += len(ids)
            self._live_postings -= len(ids)
        if self._stale > max(self._live_postings, 1024):
            self._compact()

    def _bump(self, label: int) -> None:
        """Advance a label's document generation (its postings so far go stale).

        Generations are 16 bits, so before one would reach 2**16 the index is
        compacted: the stale postings go and every generation starts again at 0.
        """
        if int(self._gen.data[label]) + 1 >= _GEN_WRAP:
            self._compact()
        self._gen.data[label] += 1

    def _compact(self) -> None:
        """Drop stale postings (and the term ids of replaced documents); every
        generation starts again at 0."""
        live = self._start.view >= 0
        for tid, post in enumerate(self._postings):
            if not self._stale_of.data[tid]:
                continue
            labels = post.labels.view
            keep = live[labels] & (post.gen.view == self._gen.data[labels])
            fresh = _Postings()
            fresh.labels.extend(labels[keep])
            fresh.gen.extend(post.gen.view[keep])
            fresh.own.extend(post.own.view[keep])
            fresh.ctx.extend(post.ctx.view[keep])
            self._postings[tid] = fresh
        self._stale_of.data[:] = 0
        # Every posting left is live: all of them, and every label, go back to
        # generation 0 (so a generation never wraps, see _bump).
        for post in self._postings:
            post.gen.view[:] = 0
        self._gen.view[:] = 0
        docs = np.flatnonzero(live)
        tids = Column(self._doc_tids.data.dtype)
        starts = np.full(self._start.n, -1, np.int32)
        for label in docs.tolist():
            ids = self._doc(label)
            assert ids is not None
            starts[label] = tids.n
            tids.extend(ids)
        self._doc_tids = tids
        self._start = Column(np.int32)
        self._start.extend(starts)
        self._stale = 0

    def search(
        self,
        query: str,
        k: int,
        allowed: BoolArray | None = None,
        *,
        weights: tuple[float, float] | None = None,
    ) -> tuple[FloatMatrix, IntArray]:
        """The best ``k`` documents by BM25 (higher is better), among ``allowed`` labels.

        Only documents that contain a query term are returned; ties break by label
        (the lower first), at the k-th place too.
        """
        empty = (np.zeros(0, np.float32), np.zeros(0, np.int64))
        n_docs = self._n_docs
        ids = {self._terms[t] for t in (stem(w) for w in query_terms(query)) if t in self._terms}
        if k <= 0 or not ids or not n_docs:
            return empty
        common = [t for t in ids if 2 * int(self._df.data[t]) > n_docs]
        rare = sorted(set(ids) - set(common))
        # A term in more than half the documents has an IDF of at most 0, which
        # BM25 (as FTS5) floors to 1e-6: it barely moves a score, and is the
        # costliest to score. It is scored only when the rarer terms match fewer
        # than k documents, so that those matching it alone still come back.
        if not self._compiled():
            found, values = self._search_numpy(rare, common, k, allowed, weights)
            return values.astype(np.float32), found
        terms = self._scoring(weights)
        found, values, matched = bm25.search(
            terms, self._posting_args(rare), self._gen.n, k, allowed
        )
        if matched < k and common:
            postings = self._posting_args(sorted(ids))
            found, values, _ = bm25.search(terms, postings, self._gen.n, k, allowed)
        return values.astype(np.float32), found

    def _search_numpy(
        self,
        rare: list[int],
        common: list[int],
        k: int,
        allowed: BoolArray | None,
        weights: tuple[float, float] | None,
    ) -> tuple[IntArray, np.ndarray]:
        """:meth:`search` without numba: the same floats, by max-score pruning in numpy."""
        n_docs = self._n_docs
        w_own, w_ctx = weights or self.weights
        avg = self._total_length / n_docs
        scored: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        found, values, enough = self._top(rare, k, w_own, w_ctx, avg, n_docs, allowed, scored)
        if not enough and common:
            terms = rare + sorted(common)
            found, values, _ = self._top(terms, k, w_own, w_ctx, avg, n_docs, allowed, scored)
        return found, values

    def scores(
        self, query: str, labels: IntArray, *, weights: tuple[float, float] | None = None
    ) -> FloatMatrix:
        """BM25 of each of ``labels``' documents for ``query`` (0 where none matches,
        and for a label no document can have: negative or unknown).

        The values are the floats :meth:`search` gives the same documents (every
        query term's part, added in term-id order), without ranking anything.
        """
        labels = np.asarray(labels, np.int64)
        terms = (stem(w) for w in query_terms(query))
        ids = sorted({self._terms[t] for t in terms if t in self._terms})
        out: FloatMatrix = np.zeros(len(labels), np.float32)
        known = labels >= 0
        asked = labels if known.all() else labels[known]
        if not len(asked) or not ids or not self._n_docs:
            return out
        if self._compiled():
            sums = bm25.sums(self._scoring(weights), self._posting_args(ids), self._gen.n, asked)
        else:
            sums = self._sums_numpy(ids, asked, weights)
        out[known] = sums
        return out

    def _sums_numpy(
        self, ids: list[int], labels: IntArray, weights: tuple[float, float] | None
    ) -> np.ndarray:
        """:meth:`scores` without numba (float64)."""
        n_docs = self._n_docs
        w_own, w_ctx = weights or self.weights
        avg = self._total_length / n_docs
        allowed = np.zeros(int(labels.max()) + 1, np.bool_)
        allowed[labels] = True
        sums = np.zeros(len(allowed), np.float64)
        for tid in ids:
            if int(self._df.data[tid]) > 0:
                found, parts = self._term_scores(tid, w_own, w_ctx, avg, n_docs, allowed)
                np.add.at(sums, found, parts)  # a term's live postings name each label once
        out: np.ndarray = sums[labels]
        return out

    def _compiled(self) -> bool:
        """Whether to score with the compiled loop: numba is there and the index is
        large enough for it to pay (see :data:`engramdb.index.bm25.MIN_POSTINGS`)."""
        return self._live_postings >= bm25.MIN_POSTINGS and bm25.available()

    def _idf(self, tid: int, n_docs: int) -> float:
        df = int(self._df.data[tid])
        return max(math.log((n_docs - df + 0.5) / (df + 0.5)), 1e-6)

    def _scoring(self, weights: tuple[float, float] | None) -> bm25.Terms:
        w_own, w_ctx = weights or self.weights
        avg = self._total_length / self._n_docs
        return bm25.Terms(self._gen.data, self._norm(avg), w_own, w_ctx, self.K1 + 1.0)

    def _posting_args(self, tids: Sequence[int]) -> list[bm25.Posting]:
        """The live terms among ``tids``, in that order, as the kernels take them."""
        out: list[bm25.Posting] = []
        for tid in tids:
            if int(self._df.data[tid]) > 0:
                post = self._postings[tid]
                stale = bool(self._stale_of.data[tid])
                idf = self._idf(tid, self._n_docs)
                out.append(
                    (post.labels.view, post.gen.view, post.own.view, post.ctx.view, stale, idf)
                )
        return out

    def _norm(self, avg: float) -> np.ndarray:
        """``k1 * (1 - b + b * length / avg)`` of every label, kept until the next write.

        Each posting reads its document's from here: computed once per write, not
        once per posting of every query term.
        """
        if self._norms is None or self._norms[0] != avg:
            lengths = self._length.view.astype(np.float64)
            self._norms = (avg, self.K1 * (1.0 - self.B + self.B * lengths / avg))
        return self._norms[1]

    def _term_scores(
        self,
        tid: int,
        w_own: float,
        w_ctx: float,
        avg: float,
        n_docs: int,
        allowed: BoolArray | None,
        within: BoolArray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A term's live postings among ``allowed`` (and ``within``): labels, BM25 parts.

        The arithmetic (and so every float) is the same whichever postings are kept.
        """
        post = self._postings[tid]
        # int32 on the posting, intp to index with: numpy gathers and scatters with
        # its own index type at twice the speed of int32 (which it converts each time).
        labels = post.labels.view.astype(np.intp)
        own, ctx = post.own.view, post.ctx.view
        if within is not None:
            at = np.flatnonzero(within[labels])
            labels, own, ctx = labels[at], own[at], ctx[at]
            gens = post.gen.view[at]
        else:
            gens = post.gen.view
        keep: np.ndarray | None = None
        if self._stale_of.data[tid]:
            keep = gens == self._gen.data[labels]
        if allowed is not None:
            if len(allowed) >= self._gen.n:
                ok = allowed[labels]
            else:
                inside = labels < len(allowed)
                ok = inside.copy()
                ok[inside] = allowed[labels[inside]]
            keep = ok if keep is None else keep & ok
        if keep is not None:
            labels, own, ctx = labels[keep], own[keep], ctx[keep]
        # idf * tf * (k1 + 1) / (tf + norm), written into two arrays in place: the
        # same floats (float32 numerator, float64 denominator and quotient) without
        # a new array per operation, which at tens of thousands of postings a term
        # costs more than the arithmetic. The 16-bit counts are exact in float32.
        tf = np.multiply(own, np.float32(w_own), dtype=np.float32)
        if w_ctx:  # adding 0 * count (finite) to tf would change no float
            tf += np.multiply(ctx, np.float32(w_ctx), dtype=np.float32)
        scores = self._norm(avg)[labels]
        scores += tf
        tf *= self._idf(tid, n_docs)
        tf *= self.K1 + 1.0
        np.divide(tf, scores, out=scores)
        return labels, scores

    def _bound(self, tid: int, w_own: float, w_ctx: float, avg: float, n_docs: int) -> float:
        """An upper bound on the term's BM25 part in any document (for pruning).

        The term's largest ``tf / (tf + norm)`` is kept per weights until the term
        gets new postings; removals only lower it. When the average length has
        grown since, each norm shrank by at most the ratio of the averages.
        """
        kept = self._bounds.setdefault(tid, {})
        known = kept.get((w_own, w_ctx))
        if known is None:
            labels, scores = self._term_scores(tid, w_own, w_ctx, avg, n_docs, None)
            share = float(scores.max()) / (self._idf(tid, n_docs) * (self.K1 + 1.0))
            known = kept[(w_own, w_ctx)] = (share if len(labels) else 0.0, avg)
        share, then = known
        # float32 products in the parts (see _term_scores): a relative margin of 1e-6.
        return (
            self._idf(tid, n_docs)
            * (self.K1 + 1.0)
            * share
            * max(1.0, avg / then)
            * (1.0 + _BOUND_MARGIN)
        )

    def _top(
        self,
        terms: Sequence[int],
        k: int,
        w_own: float,
        w_ctx: float,
        avg: float,
        n_docs: int,
        allowed: BoolArray | None,
        scored: dict[int, tuple[np.ndarray, np.ndarray]],
    ) -> tuple[IntArray, np.ndarray, bool]:
        """The best ``k`` labels matching any of ``terms``, their BM25 sums, and whether
        at least ``k`` documents match.

        Max-score pruning, exact: the terms are scored from the highest bound down,
        each in bulk over its postings, until the k-th best partial sum beats what
        the terms left could give a document they have not yet scored; from then
        on the terms are scored only on the documents that can still reach the
        k-th place. The sums are then added up again in term-id order, over the
        documents left, so every score is the float an unpruned sum gives.
        ``scored`` keeps each term's parts over all its postings, for another call
        with the same arguments and more terms.
        """
        live = [t for t in terms if int(self._df.data[t]) > 0]
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float64), False)
        if not live:
            return empty
        size = self._gen.n
        bounds = {t: self._bound(t, w_own, w_ctx, avg, n_docs) for t in live}
        order = sorted(live, key=lambda t: (-bounds[t], t))
        remaining = math.fsum(bounds.values())
        acc = np.zeros(size, np.float64)
        seen = np.zeros(size, np.bool_)
        cand: BoolArray | None = None
        theta = -math.inf
        parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for tid in order:
            remaining = max(remaining - bounds[tid], 0.0)
            if cand is None and tid in scored:
                labels, scores = scored[tid]
            else:
                labels, scores = self._term_scores(tid, w_own, w_ctx, avg, n_docs, allowed, cand)
                if cand is None:
                    scored[tid] = (labels, scores)
            parts[tid] = (labels, scores)
            if not len(labels):
                continue
            np.add.at(acc, labels, scores)  # a term's live postings name each label once
            if cand is None:
                seen[labels] = True
            if len(labels) >= k:
                # k documents have at least this partial sum: a floor of the k-th best.
                part = acc[labels]
                theta = max(theta, float(np.partition(part, len(part) - k)[len(part) - k]))
            slack = _SLACK * (abs(theta) + remaining + 1.0)
            if theta > remaining + slack:
                # A document below theta - remaining now cannot reach the k-th place.
                floor = theta - remaining - slack
                cand = (seen if cand is None else cand) & (acc >= floor)
        pruned = cand is not None
        keep = cand if cand is not None else seen
        found = np.flatnonzero(keep)
        if not len(found):
            return empty
        sums = np.zeros(size, np.float64)
        for tid in sorted(parts):
            labels, scores = parts[tid]
            if pruned:
                at = np.flatnonzero(keep[labels])
                labels, scores = labels[at], scores[at]
            np.add.at(sums, labels, scores)
        values = sums[found]
        enough = pruned or len(found) >= k
        if len(found) > k:
            kth = np.partition(values, len(values) - k)[len(values) - k]
            at = np.flatnonzero(values >= kth)
            found, values = found[at], values[at]
        best = np.lexsort((found, -values))[:k]
        return found[best].astype(np.int64), values[best], enough
