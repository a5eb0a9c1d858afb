"""The writer lease of a store on object storage: one writer process per store.

A local store's writer holds an ``flock`` (:mod:`.lock`); object storage has no
locks, so a remote store's writer holds a *lease*: the object
``<store>/engramdb.lease.json`` naming its owner and its time to live.

- **Taking it.** The writer creates the object with a conditional put
  (``If-None-Match: *``): of two writers racing, exactly one succeeds.
- **Keeping it.** A background thread rewrites it every third of the TTL, each
  time conditional on the ETag it last wrote (``If-Match``), so a renewal never
  overwrites a lease someone else has taken.
- **Expiry.** The lease has expired when the server's clock (its ``Date``
  header) is past the object's ``Last-Modified`` (also the server's clock) plus
  the TTL and one second of the header's rounding: no two machines' clocks are
  compared. A writer killed with SIGKILL stops renewing, and the next writer
  takes the store once the TTL has passed.
- **Taking over.** A new writer that finds an expired lease replaces it
  conditional on the ETag it read, so of two writers racing for an expired
  lease one wins and the other is refused.
- **Refused.** A second writer gets :class:`~engramdb.errors.StoreLockedError`
  naming the holder and when its lease expires unless renewed.
- **Fenced.** The holder refuses to write once its last successful renewal is
  older than the TTL (say its process was paused, or the network was down), and
  for good once a renewal finds the lease taken. What it already acknowledged is
  in the table: LanceDB commits are atomic and conflict-checked, whoever writes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from engramdb.errors import StoreIOError, StoreLockedError
from engramdb.store.location import StoreLocation
from engramdb.store.objects import ConditionFailed, ObjectFiles, Stored

__all__ = ["LEASE_FILE", "Holder", "WriterLease", "lease_holder"]

log = logging.getLogger(__name__)

LEASE_FILE = "engramdb.lease.json"
_ROUNDING = timedelta(seconds=1)
"""``Last-Modified`` and ``Date`` are whole seconds: expiry waits one more."""
_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a store's lease, as its object says, and when it expires (server clock)."""

    owner: str
    ttl: timedelta
    expires: datetime
    now: datetime

    @property
    def expired(self) -> bool:
        return self.now >= self.expires

    def describe(self) -> str:
        left = (self.expires - self.now).total_seconds()
        when = self.expires.isoformat(timespec="seconds")
        if left <= 0:
            return f"{self.owner} (its lease expired at {when})"
        return (
            f"{self.owner} (its lease expires at {when}, {left:.0f} s from now, unless renewed "
            f"every {self.ttl.total_seconds() / 3:.0f} s)"
        )


def _holder(stored: Stored, default_ttl: timedelta) -> Holder:
    try:
        body = json.loads(stored.data)
        owner = str(body["owner"])
        ttl = timedelta(seconds=float(body["ttl_seconds"]))
    except (ValueError, KeyError, TypeError):
        # A damaged lease still expires: after our TTL, counted from its last write.
        owner, ttl = "an unknown writer (its lease object is damaged)", default_ttl
    return Holder(owner=owner, ttl=ttl, expires=stored.modified + ttl + _ROUNDING, now=stored.now)


def lease_holder(files: ObjectFiles, *, default_ttl: timedelta) -> Holder | None:
    """Who holds the store's lease now, or None if nobody does (nothing is written)."""
    stored = files.get(LEASE_FILE)
    return _holder(stored, default_ttl) if stored is not None else None


class WriterLease:
    """Hold the writer lease of the remote store at ``location`` until :meth:`release`.

    Args:
        location: The remote store.
        ttl: How long the lease lives unless renewed; it is renewed every third of it.
        owner: How the lease names this writer (default ``host:pid``).
        files: The store's object client (one is made from ``location`` if None).

    Raises:
        StoreLockedError: another writer holds a lease that has not expired.
        StoreIOError: the object store could not be reached or refused the request.
    """

    def __init__(
        self,
        location: StoreLocation,
        *,
        ttl: timedelta,
        owner: str | None = None,
        files: ObjectFiles | None = None,
    ) -> None:
        self.location = location
        self.ttl = ttl
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._files = files or ObjectFiles(location)
        self._body = json.dumps(
            {
                "owner": self.owner,
                "token": uuid.uuid4().hex,
                "ttl_seconds": ttl.total_seconds(),
                "format": 1,
            }
        ).encode()
        self._lost: str | None = None
        self._released = False
        self._renewed = time.monotonic()
        self._etag = self._acquire()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="engramdb-lease", daemon=True)
        self._thread.start()

    def _acquire(self) -> str:
        for _ in range(_ATTEMPTS):
            started = time.monotonic()
            try:
                etag = self._files.put(LEASE_FILE, self._body, if_absent=True)
            except ConditionFailed:
                pass
            else:
                self._renewed = started
                return etag
            stored = self._files.get(LEASE_FILE)
            if stored is None:
                continue  # released between our put and our read: try again
            holder = _holder(stored, self.ttl)
            if not holder.expired:
                raise StoreLockedError(
                    f"store {self.location} is open for writing by {holder.describe()}; close "
                    "that writer first, wait for its lease to expire, or open this one with "
                    "read_only=True"
                )
            started = time.monotonic()
            try:
                etag = self._files.put(LEASE_FILE, self._body, if_match=stored.etag)
            except ConditionFailed:
                continue  # another writer took the expired lease first: see who
            log.warning(
                "took over the expired writer lease of %s from %s", self.location, holder.owner
            )
            self._renewed = started
            return etag
        raise StoreLockedError(
            f"store {self.location}: other writers kept taking its lease while this one tried "
            f"{_ATTEMPTS} times; retry, and make sure one writer opens the store at a time"
        )

    def _renew(self) -> None:
        period = self.ttl.total_seconds() / 3
        while not self._stop.wait(period):
            started = time.monotonic()
            try:
                self._etag = self._files.put(LEASE_FILE, self._body, if_match=self._etag)
            except ConditionFailed:
                self._lost = (
                    "another writer took the lease over after it expired (this process did not "
                    f"renew it for longer than its {self.ttl.total_seconds():g} s TTL)"
                )
                log.error("lost the writer lease of %s: %s", self.location, self._lost)
                return
            except StoreIOError as exc:
                log.warning("could not renew the writer lease of %s: %s", self.location, exc)
                continue
            self._renewed = started

    def check(self) -> None:
        """Raise unless this process may write now (called before every write).

        Raises:
            StoreLockedError: the lease was lost, released, or not renewed for
                longer than its TTL (another writer may have taken it).
        """
        if self._released:
            raise StoreLockedError(f"the writer lease of store {self.location} was released")
        if self._lost is not None:
            raise StoreLockedError(
                f"lost the writer lease of store {self.location}: {self._lost}; nothing more is "
                "written here: close this engine and open the store again"
            )
        age = time.monotonic() - self._renewed
        if age > self.ttl.total_seconds():
            raise StoreLockedError(
                f"the writer lease of store {self.location} was last renewed {age:.1f} s ago, "
                f"longer than its {self.ttl.total_seconds():g} s TTL (is the object store "
                "reachable?); writes are refused until a renewal succeeds"
            )

    def release(self) -> None:
        """Stop renewing and delete the lease (if it is still ours). Safe to call twice."""
        if self._released:
            return
        self._released = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self._lost is not None:
            return
        try:
            self._files.delete(LEASE_FILE, if_match=self._etag)
        except ConditionFailed:
            pass  # someone else holds it now
        except StoreIOError as exc:
            log.warning(
                "could not delete the writer lease of %s (it expires in %g s): %s",
                self.location,
                self.ttl.total_seconds(),
                exc,
            )

    @property
    def held(self) -> bool:
        return not self._released and self._lost is None
