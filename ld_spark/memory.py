"""glibc's allocator, in the run's processes: fewer arenas, and freed memory handed back.

glibc gives threads arenas of their own as they start to allocate (up to 8 per core), and
keeps what is freed in an arena for that arena's next allocations. The JVM runs a couple of
hundred threads, and the sensitivity stage fits its analyses in two Python threads, so memory
one arena freed is not reused by allocations in another. With fewer arenas, and each stage's
freed memory handed back, two scale-1 runs peaked at 4.41 and 4.49 GiB against 4.74 and 4.78
GiB without: inside this machine's run-to-run spread, but the driver ends the run at 0.55 GiB
against 0.88 (benchmarks/results/driver_memory.md).

Elsewhere (macOS, musl) there is no glibc to tune, and these are no-ops.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os

M_ARENA_MAX = -8  # mallopt's parameter number for the arena cap (glibc's malloc.h)
ENVIRONMENT = "MALLOC_ARENA_MAX"  # what glibc reads when a process starts


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int | None) -> None:
    """At most `arenas` malloc arenas in this process, for the arenas it makes from now on (best
    effort: glibc keeps arenas already made, and its cap once more than 8 exist). None or 0
    leaves glibc's default."""
    libc = _glibc()
    if arenas and libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


def limit_child_arenas(arenas: int | None) -> None:
    """At most `arenas` malloc arenas in the processes started from now on (the JVM of a local
    session, and its Python workers), through the environment; a value already there is kept."""
    if arenas:
        os.environ.setdefault(ENVIRONMENT, str(arenas))


def hand_back() -> None:
    """Collect Python's garbage and return the allocator's free pages to the system."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
