"""glibc's allocator in the run's processes (ld_spark/memory.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ld_spark import memory

linux = pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@linux
def test_the_jvm_starts_with_the_arena_cap_from_conf(spark, config):
    assert config.spark.malloc_arena_max == 2  # base.yaml's, which test.yaml keeps
    jvm = spark.sparkContext._gateway.proc.pid
    environ = Path(f"/proc/{jvm}/environ").read_bytes().split(b"\0")
    assert b"MALLOC_ARENA_MAX=2" in environ


def test_a_cap_already_in_the_environment_is_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "1")
    memory.limit_arenas(4)
    assert os.environ["MALLOC_ARENA_MAX"] == "1"


def test_no_cap_leaves_the_environment_alone(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    memory.limit_arenas(None)
    assert "MALLOC_ARENA_MAX" not in os.environ


@linux
def test_freed_memory_below_a_live_allocation_goes_back_to_the_system():
    # 200k blocks of 1 KiB (malloc's, not Python's small-object pools), all freed but the last:
    # the live block at the top keeps malloc from shrinking the heap on its own.
    blocks = [bytearray(1024) for _ in range(200_000)]
    last = blocks[-1]
    del blocks
    freed = _rss_mib()
    memory.hand_back()
    assert _rss_mib() < freed - 100
    assert len(last) == 1024
