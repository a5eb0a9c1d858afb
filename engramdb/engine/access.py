"""Access counting: recall counts hits in memory; a background thread logs the counts.

Recall never writes to the store. It bumps the counts in the agent's view (the
truth while the engine is open) and notes which memories changed in a bounded
buffer; once the buffer holds ``flush_every`` memories a background thread
waits for a pause in recall (``idle`` seconds with no recall running, at most
``max_wait``) and appends their absolute counts to the store's access log
(:mod:`engramdb.store.access`) in one commit, a write whose cost follows the
batch, not the table. ``flush()`` and ``close()`` write what is left on the
caller's thread. A killed process may lose the counts buffered since the last
write, never a memory: the log only holds counts, and reads lay them over the
memories table's. Once the log holds ``fold_rows`` rows, the background writer
folds it into the memories table (see :meth:`MemoryTable.fold_access`).

Why wait for a pause: a write is a few milliseconds of LanceDB work, but its
Python side passes the interpreter lock back and forth with the query thread, so
a recall running beside it takes several times as long (the tail of recall's
latency was almost entirely such recalls). Agents recall in bursts; the write
lands between them. Under load with no pause it still goes out after
``max_wait``.

Locks: the buffer has its own small lock, taken only around dict operations.
A write holds the store's ``write_lock`` from reading the counts to committing
them, so no fold or bulk write can land in between. The flusher never takes the
engine's lock, so ``close()`` (which holds it) can wait for the flusher without
a deadlock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from engramdb.engine.views import ViewRegistry
from engramdb.errors import EngramError
from engramdb.index.records import NO_TIME
from engramdb.index.view import AgentView, to_micros
from engramdb.records import utcnow
from engramdb.store.access import access_schema
from engramdb.store.table import Commit, MemoryTable

__all__ = ["BUFFER_FACTOR", "FOLD_ON_CLOSE", "FOLD_ROWS", "AccessLog"]

log = logging.getLogger(__name__)

_TS = pa.timestamp("us", "UTC")

BUFFER_FACTOR = 16
"""The buffer holds at most this many times ``flush_every`` memories by default."""
FOLD_ROWS = 100_000
"""Access-log rows past which the background writer folds the log into the table."""
FOLD_ON_CLOSE = 10_000
"""Access-log rows past which ``close()`` folds the log (below, the next open reads it)."""
_POLL = 0.05
"""Seconds at most between two looks at the buffer while the writer waits for a pause."""


class AccessLog:
    """Buffered access counts, written off the query thread: never one write per query.

    Args:
        store: Where counts are written.
        views: Where the current counts live (the view columns are the truth).
        flush_every: Buffered memories that wake the background writer.
        capacity: The most memories the buffer holds (default ``BUFFER_FACTOR *
            flush_every``). When it is full, a memory not already in it is not
            added (its count stays right in memory and is written if it is
            accessed again after a write): recall never waits for the store.
        min_interval: Seconds at least between two background writes (``flush()``
            and ``close()`` write at once): under steady recall the counts go out
            about once per interval, however fast the buffer fills.
        idle: Seconds with no recall running that the background writer waits for
            before it writes (0: write at once).
        max_wait: The longest the background writer waits for such a pause.
        read_only: A reader never writes: nothing is buffered, no thread starts.
        fold_rows: Access-log rows past which the background writer folds the log
            into the memories table (one join against every row).
    """

    def __init__(
        self,
        store: MemoryTable,
        views: ViewRegistry,
        *,
        flush_every: int,
        capacity: int | None = None,
        min_interval: float = 0.0,
        idle: float = 0.0,
        max_wait: float = 0.0,
        read_only: bool = False,
        fold_rows: int = FOLD_ROWS,
    ) -> None:
        self.store = store
        self.views = views
        self.flush_every = flush_every
        self.capacity = max(capacity or BUFFER_FACTOR * flush_every, flush_every)
        self.read_only = read_only
        self.min_interval = min_interval
        self.idle = idle
        self.max_wait = max_wait
        self.fold_rows = fold_rows
        self.dropped = 0
        """Accesses not buffered because the buffer was full."""
        self.error: EngramError | None = None
        """The last background write's error (the counts stay buffered for the next)."""
        self.before_write: Callable[[], None] | None = None
        """Called by the background writer just before it commits (tests pause it here)."""
        self._pending: dict[str, str] = {}
        """Memory id -> agent, for every memory accessed since the last write."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = 0
        """Recalls running now (recall marks its start and end; see :meth:`busy`)."""
        self._idle_since = time.monotonic()

    def __len__(self) -> int:
        return len(self._pending)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Mark a recall running: the background writer waits until none has run for
        ``idle`` seconds. Two plain attribute writes; no lock (the engine's lock
        serializes recalls, and a race only moves a write by one poll)."""
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._idle_since = time.monotonic()

    def record(self, view: AgentView, labels: Sequence[int]) -> None:
        """Count one access of each label's memory; wake the writer when the buffer fills."""
        if self.read_only:
            return
        view.count_access(labels, to_micros(utcnow()))
        with self._lock:
            for label in labels:
                mid = view.ids[label]
                if mid is None:
                    continue
                if mid in self._pending or len(self._pending) < self.capacity:
                    self._pending[mid] = view.agent
                else:
                    self.dropped += 1
            due = len(self._pending) >= self.flush_every
        if due:
            self._wake_writer()

    def forget(self, memory_id: str | None = None, *, agent: str | None = None) -> None:
        """Drop buffered counts of a deleted memory, or of every memory of ``agent``."""
        with self._lock:
            if memory_id is not None:
                self._pending.pop(memory_id, None)
            if agent is not None:
                self._pending = {k: v for k, v in self._pending.items() if v != agent}

    def flush(self) -> Commit | None:
        """Log buffered access counts now, in one commit (None when there was nothing).

        The commit's version is the access log's.
        """
        if self.read_only:
            return None
        return self._write()

    def close(self) -> Commit | None:
        """Stop the background writer (after the write it is in), then flush the rest."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join()
            self._thread = None
        return self.flush()

    # -- the background writer ---------------------------------------------------------

    def _wake_writer(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._run, name=f"engramdb-access-{id(self):x}", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        last = -float("inf")
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            rest = last + self.min_interval - time.monotonic()
            if rest > 0 and self._stop.wait(rest):
                return  # close() writes what is buffered
            if self._wait_for_pause():
                return
            last = time.monotonic()
            try:
                self._write(hook=self.before_write)
                if self.store.access.rows >= self.fold_rows:
                    self.store.fold_access()
            except EngramError as exc:  # kept buffered; the next write tries again
                self.error = exc
                log.warning("could not write access counts to %s: %s", self.store.root, exc)

    def _wait_for_pause(self) -> bool:
        """Wait until no recall has run for ``idle`` seconds, ``max_wait`` passed, or the
        buffer is half full (waiting longer would drop counts); True when the log is
        closing instead (``close()`` writes what is buffered)."""
        if self.idle <= 0.0:
            return False
        deadline = time.monotonic() + self.max_wait
        while True:
            now = time.monotonic()
            quiet = 0.0 if self._running else now - self._idle_since
            full = 2 * len(self._pending) >= self.capacity
            if quiet >= self.idle or now >= deadline or full:
                return False
            if self._stop.wait(min(self.idle - quiet, deadline - now, _POLL)):
                return True

    def _write(self, hook: Callable[[], None] | None = None) -> Commit | None:
        with self.store.write_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return None
            ids, agents, created, counts, lasts = [], [], [], [], []
            for mid, agent in batch.items():
                view = self.views.loaded(agent)
                label = None if view is None else view.label_of.get(mid)
                if view is None or label is None:
                    continue
                ids.append(mid)
                agents.append(agent)
                created.append(view.created_micros(label))
                counts.append(int(view.access.data[label]))
                lasts.append(int(view.last_access.data[label]))
            if not ids:
                return None
            data = pa.table(
                {
                    "id": ids,
                    "agent": agents,
                    "created_at": pa.array(created, pa.int64()).cast(_TS),
                    "access_count": pa.array(counts, pa.int64()),
                    "last_accessed_at": pa.array(
                        lasts, pa.int64(), mask=np.array(lasts) == NO_TIME
                    ).cast(_TS),
                },
                schema=access_schema(),
            )
            if hook is not None:
                hook()
            try:
                return Commit(self.store.access.append(data), len(ids))
            except BaseException:
                with self._lock:  # back in the buffer (over its capacity: it was there)
                    for mid, agent in batch.items():
                        self._pending.setdefault(mid, agent)
                raise
