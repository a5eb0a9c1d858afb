"""The C heap of a long-running process: hand freed memory back, and keep fewer arenas.

glibc's ``malloc`` gives each thread that allocates its own heap ("arena"), up
to eight per core. LanceDB reads an agent's rows on its worker threads, so
building a view leaves memory in several arenas, fragmented around the few
allocations that live on; measured at 100k memories (``benchmarks/resident.py``),
a view built with the default arenas holds 0.1-0.4 KiB per memory more than
with one or two. Elsewhere than glibc both functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

__all__ = ["limit_malloc_arenas", "release_free_memory"]

_M_ARENA_MAX = -8
"""``mallopt``'s parameter for the most arenas (glibc's ``malloc.h``)."""


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    # Both exist only in glibc: elsewhere (musl, macOS) nothing is called.
    if getattr(lib, "malloc_trim", None) is None or getattr(lib, "mallopt", None) is None:
        return None
    return lib


_LIBC = _libc()


def release_free_memory() -> None:
    """Hand memory freed by a bulk build back to the operating system.

    Building an agent's view reads the whole agent from the store (Arrow
    buffers) and makes a Python value per memory on the way, all freed once the
    columns are built; Arrow's pool and the C heap keep such memory for reuse,
    which at 100,000 memories is more than the view itself. This releases both
    (``malloc_trim`` where the C library is glibc; nothing elsewhere).
    """
    import pyarrow as pa  # here: importing it starts a thread, which takes an arena

    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap the C heap's arenas at ``arenas`` for the rest of the process (glibc only).

    Call it first thing in a process that will hold many memories, before any
    engine is opened: glibc fixes the cap when threads first need more arenas,
    so a later call may have no effect. ``MALLOC_ARENA_MAX`` (or
    ``glibc.malloc.arena_max`` in ``GLIBC_TUNABLES``) in the environment takes
    precedence (then nothing is changed). The engine's servers call this
    at start. The cost is more contention between threads allocating at once,
    which recall (Python, one thread at a time) does not do.

    Returns:
        Whether the cap was set (False: not glibc, or the environment sets it).

    Raises:
        ValueError: ``arenas`` is below 1.
    """
    if isinstance(arenas, bool) or not isinstance(arenas, int) or arenas < 1:
        raise ValueError(f"arenas {arenas!r} must be an int of at least 1 (1 or 2 save the most)")
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if _LIBC is None or os.environ.get("MALLOC_ARENA_MAX") or "arena_max" in tunables:
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, arenas))
