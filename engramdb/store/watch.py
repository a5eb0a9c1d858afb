"""A reader's cheap look at a local store: may the writer have committed since?

Every LanceDB commit writes a manifest into its table's ``_versions``
directory, which changes the directory's modification time. A read-only
engine on a local store follows the writer before every call; asking LanceDB
for the newest version of both tables costs about a millisecond a call (and
wakes its worker threads beside the query), where a ``stat`` of the two
directories costs microseconds. So the reader asks LanceDB only when a
directory changed, or when it changed too recently to trust: file times are
coarse (a commit in the same clock tick as the last one looked at leaves the
time as it was), so a time within :data:`RACY_SECONDS` of now always counts as
a change. A missing directory is stamped as missing, so its creation is a change.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RACY_SECONDS", "VersionsWatch"]

RACY_SECONDS = 2.0
"""A directory changed this recently is looked at again (file times are coarse)."""

Stamp = tuple[tuple[int, int, int] | None, ...]


class VersionsWatch:
    """Stamps of local tables' ``_versions`` directories, and the one last followed.

    Args:
        tables: The tables' directories (``<name>.lance``); a missing one is
            stamped as missing, so its creation is a change.
    """

    def __init__(self, tables: Sequence[Path]) -> None:
        self.dirs = [Path(t) / "_versions" for t in tables]
        self._followed: Stamp | None = None

    def look(self) -> Stamp:
        """The directories' stamps now: (modification time ns, inode, size), None if missing."""
        out: list[tuple[int, int, int] | None] = []
        for d in self.dirs:
            try:
                st = os.stat(d)
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_mtime_ns, st.st_ino, st.st_size))
        return tuple(out)

    def unchanged(self, stamp: Stamp) -> bool:
        """Whether ``stamp`` is the one last followed and old enough to trust."""
        if stamp != self._followed:
            return False
        trusted = time.time_ns() - int(RACY_SECONDS * 1e9)
        return all(s is None or s[0] < trusted for s in stamp)

    def followed(self, stamp: Stamp) -> None:
        """Record that the reader caught up with the tables as ``stamp`` saw them
        (taken before catching up, so a commit in between is a change next time)."""
        self._followed = stamp
