"""glibc's allocator, in the run's processes: fewer arenas, and freed memory handed back.

glibc gives each thread that contends for malloc an arena of its own (up to 8 per core), and
keeps what is freed in an arena for that arena's next allocations. The sensitivity stage fits
its analyses in threads, so the frames the effects stage freed in one arena are not reused by
the fits in the others: the process grows by both. Fewer arenas, and handing each stage's freed
memory back, keep the driver's RSS to what it holds (benchmarks/results/driver_memory.md).

Elsewhere (macOS, musl) there is no glibc to tune, and both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

M_ARENA_MAX = -8  # mallopt's parameter number for the arena cap (glibc's malloc.h)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int | None) -> None:
    """At most `arenas` malloc arenas: in this process from now on, and (through MALLOC_ARENA_MAX,
    unless already set) in the processes it starts after this: the JVM and its Python workers.
    None or 0 leaves glibc's default."""
    if not arenas:
        return
    os.environ.setdefault("MALLOC_ARENA_MAX", str(arenas))
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, int(os.environ["MALLOC_ARENA_MAX"]))


def hand_back() -> None:
    """Collect Python's garbage and return the allocator's free pages to the system."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
