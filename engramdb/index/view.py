"""An agent's memory held in RAM: records, filter columns by label, and the vector index.

Labels are dense slots handed out in order of arrival; a removed memory frees
its slot for good (the columns mark it dead). Filters are evaluated as numpy
masks over labels, so recall filters before top-k without a Python loop per
memory, except for metadata conditions, which run only when asked for.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np

from engramdb._types import BoolArray, FloatMatrix, IntArray
from engramdb.index.ball import BallIndex
from engramdb.index.columns import Column
from engramdb.index.filters import Predicate
from engramdb.index.hierarchy import (
    Hierarchy,
    build_hierarchy,
    extend_hierarchy,
    prune_hierarchy,
    refine_depths,
)
from engramdb.index.lexicon import AgentLexicon
from engramdb.index.records import RecordColumns, from_micros, to_micros
from engramdb.index.vector import FlatIndex, HNSWIndex, NoIndex, VectorIndex, make_index
from engramdb.records import Memory, MemoryKind, MemoryStatus

__all__ = [
    "MEMORY_OVERHEAD_BYTES",
    "AgentView",
    "from_micros",
    "normalize_rows",
    "to_micros",
    "to_ts",
]

_KINDS = list(MemoryKind)
_KIND_CODE = {k: np.int8(i) for i, k in enumerate(_KINDS)}
_NO_EXPIRY = np.inf

_TEXT_SAMPLE = 256
MEMORY_OVERHEAD_BYTES = 240
"""Python objects per memory besides the arrays: the id string, the id -> label
map's entry, the lists' pointers to the id, text and metadata, and the text
string's header (its characters are counted apart). From a breakdown of a
100k-memory view (about 0.23 KB). The Poincaré ball index and the hierarchy,
built on demand, are not counted."""


_NO_VECTORS = np.zeros((0, 0), np.float32)


class _Deferred(NoIndex):
    """The index of a view being built: the real one is built once the records are in."""

    def add(self, labels: IntArray, vectors: FloatMatrix) -> None:
        pass

    def remove(self, labels: IntArray) -> None:
        pass


def to_ts(value: datetime | None, default: float = _NO_EXPIRY) -> float:
    return default if value is None else value.timestamp()


_UNIT = 1e-6
"""A row whose norm is this close to 1 is unit already, and is kept bit for bit."""


def normalize_rows(vectors: FloatMatrix) -> FloatMatrix:
    """Unit rows (cosine space); a zero row stays zero.

    Idempotent: a row already unit (to :data:`_UNIT`) is kept as it is. Dividing
    a float32 unit row by its norm again can move its last bits, so a vector
    normalised once more on its way to the store or back (an update, a reopen)
    would differ from the one indexed, and equal texts' similarities could
    differ in the sixth decimal, which recall's min-max scaling magnifies.
    """
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    off = np.abs(norms - 1.0) > _UNIT
    out = rows.copy() if rows is vectors else rows  # never the caller's own array
    if off.any():
        scaled = rows[off].astype(np.float64) / np.maximum(norms[off], 1e-12)[:, None]
        out[off] = scaled.astype(np.float32)
    return out


class AgentView:
    """Everything recall needs about one agent, kept in step with the store."""

    def __init__(
        self,
        agent: str,
        dim: int,
        *,
        index_kind: str,
        exact_threshold: int,
        recall_target: float | None = None,
    ) -> None:
        self.agent = agent
        self.dim = dim
        self.index_kind = index_kind
        self.exact_threshold = exact_threshold
        self.recall_target = recall_target
        """Recall@10 an approximate index tunes itself to keep (None: fixed breadth)."""
        self.label_of: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.alive = Column(np.bool_)
        self.kind = Column(np.int8)
        self.archived = Column(np.bool_)
        self.session = Column(np.int32)
        self.created = Column(np.float64)
        self.expires = Column(np.float64)
        self.importance = Column(np.float32)
        self.access = Column(np.int64)
        self.last_access = Column(np.int64)
        self._sessions: dict[str | None, int] = {None: -1}
        self._session_names: list[str | None] = []
        self.records = RecordColumns(
            agent,
            self.ids,
            self.label_of,
            {
                "kind": self.kind,
                "archived": self.archived,
                "session": self.session,
                "access": self.access,
                "last_access": self.last_access,
            },
            self.session_name,
        )
        """Every live memory by id, built from columns when read (see :mod:`~.records`)."""
        self._max_importance = 0.0
        self._max_access = 0
        """At least every live memory's access count (kept on write and on access)."""
        self._newest: float | None = 0.0
        """The newest creation time among live memories; None: recompute on next use."""
        self._next_expiry: float | None = _NO_EXPIRY
        """The soonest expiry among live memories; None: recompute on next use."""
        self._archived = 0
        """How many live memories are archived."""
        self.refined: dict[str, float] = {}
        """Depths learned by :func:`~engramdb.index.hierarchy.refine_depths`, by id."""
        self._hierarchy: Hierarchy | None = None
        self._depths: np.ndarray | None = None
        self.generation = 0
        """Counts changes to the live memories or their depths (the ball index syncs on it)."""
        self.ball_index: BallIndex | None = None
        """Poincaré index over this view's points, built on demand (see :meth:`ball`)."""
        self.index: VectorIndex = FlatIndex(dim)
        self.lexicon = AgentLexicon(shared=(self.ids, self.records.text, self.created))
        """The lexical side: BM25 over memories with their context, and over sessions
        (it reads the ids, texts and creation times kept here)."""

    # -- building --------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        agent: str,
        batches: Iterable[Sequence[Memory]],
        vectors: FloatMatrix,
        *,
        dim: int,
        index_kind: str,
        exact_threshold: int,
        recall_target: float | None = None,
        index: VectorIndex | None = None,
    ) -> AgentView:
        """A view of the memories of ``batches``, which take labels 0, 1, ... in order.

        The records are taken a batch at a time, so a view built from the store's
        rows never holds a :class:`Memory` value per memory at once (at 100k
        memories those would be several times the view itself, and the heap they
        leave behind stays with the process). ``vectors`` are every memory's, in
        the same order: the index is built from them once, after the records.
        With ``index`` (one restored from a cache, already holding every memory's
        vector under that label) ``vectors`` is not read and may be empty.
        """
        view = cls(
            agent,
            dim,
            index_kind=index_kind,
            exact_threshold=exact_threshold,
            recall_target=recall_target,
        )
        view.index = _Deferred()  # takes the labels, ignores the vectors
        for batch in batches:
            view.add(batch, _NO_VECTORS)
        n = len(view.ids)
        if index is None:
            if len(vectors) != n or len(view) != n:
                raise ValueError(f"{len(vectors)} vectors for {n} rows of {len(view)} memories")
            vectors = normalize_rows(vectors) if n else np.zeros((0, dim), np.float32)
            index = make_index(
                index_kind,
                dim,
                n,
                exact_threshold=exact_threshold,
                train=vectors,
                recall_target=recall_target,
            )
            index.add(np.arange(n, dtype=np.int64), vectors)
        view.index = index
        view.trim()
        return view

    def _columns(self) -> tuple[Column, ...]:
        """The per-label columns recall reads."""
        return (
            self.alive,
            self.kind,
            self.archived,
            self.session,
            self.created,
            self.expires,
            self.importance,
            self.access,
            self.last_access,
        )

    def trim(self) -> None:
        """Drop the spare capacity of every column (after a bulk build)."""
        for column in self._columns():
            column.trim()
        self.records.trim()
        self.lexicon.trim()

    def __len__(self) -> int:
        return len(self.label_of)

    def nbytes(self) -> int:
        """About how many bytes the view holds: index, columns, records, lexical index.

        Arrays (the lexical index's too) are counted exactly; the Python objects
        (id maps and strings) as :data:`MEMORY_OVERHEAD_BYTES` per memory plus its
        text's characters (one string, which the record columns and the lexical
        index share), the text's length estimated from up to :data:`_TEXT_SAMPLE`
        memories.
        """
        columns = (
            *self._columns(),
            self.records.created,
            self.records.updated,
            self.records.importance,
        )
        arrays = sum(c.data.nbytes for c in columns) + 8 * len(self.ids)
        n = len(self)
        texts = (t for t in self.records.text if t is not None)
        sample = [len(t) for t in itertools.islice(texts, _TEXT_SAMPLE)]
        text = n * (sum(sample) / len(sample)) if sample else 0.0
        lexical = self.lexicon.nbytes()
        return int(self.index.nbytes() + arrays + lexical + n * MEMORY_OVERHEAD_BYTES + text)

    def _session_code(self, session: str | None) -> int:
        code = self._sessions.get(session)
        if code is None:
            code = self._sessions[session] = len(self._sessions) - 1
            self._session_names.append(session)
        return code

    def session_name(self, code: int) -> str | None:
        """The session a session code stands for (-1: no session)."""
        return None if code < 0 else self._session_names[code]

    def add(self, memories: Sequence[Memory], unit_vectors: FloatMatrix) -> None:
        """Add memories (and their unit vectors); an id already present is replaced."""
        if not memories:
            return
        replaced = [m.id for m in memories if m.id in self.label_of]
        if replaced:
            self.remove(replaced)
        start = len(self.ids)
        labels = np.arange(start, start + len(memories), dtype=np.int64)
        for m, label in zip(memories, labels, strict=True):
            self.label_of[m.id] = int(label)
            self.ids.append(m.id)
        self.records.append(memories)
        self.alive.extend(np.ones(len(memories), dtype=bool))
        self.kind.extend(np.array([_KIND_CODE[m.kind] for m in memories], dtype=np.int8))
        self.archived.extend(np.array([m.status is MemoryStatus.ARCHIVED for m in memories]))
        codes = np.array([self._session_code(m.session) for m in memories], dtype=np.int32)
        self.session.extend(codes)
        created = np.array([m.created_at.timestamp() for m in memories])
        self.created.extend(created)
        expires = np.array([to_ts(m.expires_at) for m in memories])
        self.expires.extend(expires)
        if self._newest is not None:
            self._newest = max(self._newest, float(created.max()))
        if self._next_expiry is not None:
            self._next_expiry = min(self._next_expiry, float(expires.min()))
        self._archived += sum(m.status is MemoryStatus.ARCHIVED for m in memories)
        self.importance.extend(np.array([m.importance for m in memories], dtype=np.float32))
        self._max_importance = max(self._max_importance, max(m.importance for m in memories))
        self._max_access = max(self._max_access, max(m.access_count for m in memories))
        self.access.extend(np.array([m.access_count for m in memories], dtype=np.int64))
        self.last_access.extend(
            np.array([to_micros(m.last_accessed_at) for m in memories], dtype=np.int64)
        )
        self.index.add(labels, unit_vectors)
        self._maybe_grow_index()
        self.lexicon.add(memories, labels.tolist(), codes.tolist())
        self.generation += 1
        if self._hierarchy is not None:
            added = [m.id for m in memories]
            self._follow(extend_hierarchy(self._hierarchy, self.records, added, self.refined))

    def _maybe_grow_index(self) -> None:
        # "auto" starts exact; past the threshold the agent moves to a graph index once.
        if (
            self.index_kind == "auto"
            and isinstance(self.index, FlatIndex)
            and len(self.index) >= self.exact_threshold
        ):
            labels = np.flatnonzero(self.alive.view).astype(np.int64)
            vectors = self.vectors(labels)
            self.index = HNSWIndex(self.dim, recall_target=self.recall_target)
            self.index.add(labels, vectors)

    def remove(self, ids: Sequence[str]) -> None:
        labels: list[int] = []
        removed = []
        for mid in dict.fromkeys(ids):
            label = self.label_of.get(mid)
            if label is not None:
                removed.append(self.records.memory(label))
                labels.append(label)
        if labels:
            # First: the lexicon reads the ids, texts and times cleared below.
            self.lexicon.remove(removed, labels)
            for m, label in zip(removed, labels, strict=True):
                del self.label_of[m.id]
                self.records.drop(label)
                self.ids[label] = None
                self.alive.data[label] = False
            self._forget_aggregates(np.asarray(labels, dtype=np.int64))
            self.index.remove(np.asarray(labels, dtype=np.int64))
            self.generation += 1
            if self._hierarchy is not None:
                self._follow(prune_hierarchy(self._hierarchy, removed, self.refined), labels)

    def set_record(self, memory: Memory) -> None:
        """Replace a record whose vector (text, session, creation time) did not change."""
        label = self.label_of[memory.id]
        if memory.parent_id != self.records.parent_id(label):
            self._changed()
        self.records.replace(label, memory)
        archived = memory.status is MemoryStatus.ARCHIVED
        self._archived += int(archived) - int(self.archived.data[label])
        self.archived.data[label] = archived
        self.importance.data[label] = memory.importance
        self._max_importance = max(self._max_importance, memory.importance)
        self._max_access = max(self._max_access, memory.access_count)
        expires = to_ts(memory.expires_at)
        if expires != self.expires.data[label]:
            self._next_expiry = None
        self.expires.data[label] = expires
        self.access.data[label] = memory.access_count
        self.last_access.data[label] = to_micros(memory.last_accessed_at)

    def _forget_aggregates(self, labels: IntArray) -> None:
        """Keep the aggregates right after ``labels`` died (their columns still hold them)."""
        self._archived -= int(self.archived.data[labels].sum())
        if self._newest is not None and float(self.created.data[labels].max()) >= self._newest:
            self._newest = None
        if self._next_expiry is not None and float(self.expires.data[labels].min()) <= (
            self._next_expiry
        ):
            self._next_expiry = None

    def vectors(self, labels: IntArray) -> FloatMatrix:
        """Unit vectors of live labels, read back from the index."""
        return self.index.vectors(labels)

    def _changed(self) -> None:
        # Hierarchy-derived state follows the records: recompute it on next use.
        # The ball index stays; ball() moves the points whose depth changed.
        self.generation += 1
        self._hierarchy = None
        self._depths = None

    def _follow(self, touched: set[str] | None, dead: Sequence[int] = ()) -> None:
        """Patch the depths by label after the hierarchy was updated in place.

        ``touched`` are the ids whose depth may have changed, None when the
        hierarchy could not follow the write and must be rebuilt.
        """
        if touched is None or self._hierarchy is None:
            self._changed()
            return
        if self._depths is None:
            return
        # A new array, not an update in place: callers may hold the old one.
        depths = np.full(len(self.ids), np.nan)
        depths[: len(self._depths)] = self._depths
        depths[list(dead)] = np.nan
        norm = self._hierarchy.norm
        for mid in touched:
            depths[self.label_of[mid]] = norm[mid]
        self._depths = depths

    def ball(self) -> BallIndex:
        """The Poincaré index of the live memories, brought up to date.

        Exact while the agent's vector index is exact, HNSW once it is approximate;
        after a write it moves only the points whose depth changed.
        """
        approximate = not self.index.exact
        if self.ball_index is None or self.ball_index.approximate != approximate:
            self.ball_index = BallIndex(self.dim, approximate=approximate)
        if self.ball_index.generation != self.generation:
            self.ball_index.sync(self.alive.view, self.depths(), self.vectors)
            self.ball_index.generation = self.generation
        return self.ball_index

    def refine(self, *, dim: int, epochs: int | None, seed: int) -> dict[str, float]:
        """Learn depths for the linked memories (see :func:`refine_depths`); returns them."""
        self.refined = refine_depths(self.records, dim=dim, epochs=epochs, seed=seed)
        self._changed()
        return dict(self.refined)

    def hierarchy(self) -> Hierarchy:
        if self._hierarchy is None:
            self._hierarchy = build_hierarchy(self.records, self.refined)
        return self._hierarchy

    def depths(self) -> np.ndarray:
        """Depth (norm in the Poincaré ball) by label; NaN for dead labels."""
        if self._depths is None:
            norm = self.hierarchy().norm
            depths = np.full(len(self.ids), np.nan)
            for label, mid in enumerate(self.ids):
                if mid is not None:
                    depths[label] = norm[mid]
            self._depths = depths
        return self._depths

    # -- reading ---------------------------------------------------------------------------

    def current(self, memory_id: str) -> Memory:
        """The record with its access fields as recall has updated them."""
        return self.records[memory_id]

    def memory(self, label: int) -> Memory:
        """The record at a live label (what :meth:`current` gives by id)."""
        return self.records.memory(label)

    def labels_of_kind(self, kind: MemoryKind) -> IntArray:
        """The live labels of one kind (a column scan, no records built)."""
        return np.flatnonzero(self.alive.view & (self.kind.view == _KIND_CODE[kind]))

    def created_micros(self, label: int) -> int:
        """A label's exact creation time in microseconds (for sorting without records)."""
        return int(self.records.created.data[label])

    def mask(
        self,
        *,
        now: float,
        kinds: Sequence[MemoryKind] | None = None,
        session: str | None = None,
        since: float | None = None,
        until: float | None = None,
        include_archived: bool = False,
        where: Predicate | None = None,
    ) -> BoolArray:
        """Labels that pass every filter (and are alive and not expired)."""
        mask = self.alive.view & (self.expires.view > now)
        if not include_archived:
            mask &= ~self.archived.view
        if kinds is not None:
            mask &= np.isin(self.kind.view, [_KIND_CODE[k] for k in kinds])
        if session is not None:
            code = self._sessions.get(session)
            if code is None:
                return np.zeros_like(mask)
            mask &= self.session.view == code
        if since is not None:
            mask &= self.created.view >= since
        if until is not None:
            mask &= self.created.view < until
        if where is not None:
            for label in np.flatnonzero(mask).tolist():
                if self.ids[label] is None or not where(self.records.metadata(label)):
                    mask[label] = False
        return mask

    def count_access(self, labels: Sequence[int], stamp: int) -> None:
        """One more access of each label's memory, at ``stamp`` (microseconds)."""
        for label in labels:
            self.access.data[label] += 1
            self.last_access.data[label] = stamp
            self._max_access = max(self._max_access, int(self.access.data[label]))

    def raise_access(self, label: int, count: int, stamp: int) -> None:
        """Raise a label's access count and time to logged ones; never lowers either."""
        if count > self.access.data[label]:
            self.access.data[label] = count
            self._max_access = max(self._max_access, count)
        if stamp > self.last_access.data[label]:
            self.last_access.data[label] = stamp

    def max_access(self) -> int:
        """An upper bound on the access count of any live memory (kept on write and access)."""
        return self._max_access

    def max_importance(self) -> float:
        """An upper bound on the importance of any live memory (kept on write)."""
        return self._max_importance

    def newest_time(self) -> float:
        """The newest creation time among live memories (the default recency reference).

        Kept on write; recomputed only after the newest memory left.
        """
        if self._newest is None:
            alive = self.alive.view
            self._newest = float(self.created.view[alive].max()) if alive.any() else 0.0
        return self._newest

    def next_expiry(self) -> float:
        """The soonest expiry time among live memories (inf when none expires)."""
        if self._next_expiry is None:
            alive = self.alive.view
            self._next_expiry = float(self.expires.view[alive].min()) if alive.any() else _NO_EXPIRY
        return self._next_expiry

    def all_pass(self, *, now: float, include_archived: bool) -> bool:
        """Whether every live memory passes :meth:`mask` with no filter: no mask needed.

        True when none has expired by ``now`` and none is archived (or archived
        memories are included); answered from aggregates kept on write.
        """
        return self.next_expiry() > now and (include_archived or self._archived == 0)
