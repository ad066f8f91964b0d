"""glibc's allocator in the run's processes (ld_spark/memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ld_spark import memory, session

glibc = pytest.mark.skipif(memory._glibc() is None, reason="glibc's allocator only")


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@glibc
def test_the_jvm_starts_with_the_arena_cap_from_conf(spark, config):
    assert config.spark.malloc_arena_max == 2  # base.yaml's, which test.yaml keeps
    jvm = spark.sparkContext._gateway.proc.pid  # spark-submit execs spark-class, which execs java
    environ = Path(f"/proc/{jvm}/environ").read_bytes().split(b"\0")
    assert b"MALLOC_ARENA_MAX=2" in environ


def test_the_jvm_runs_with_the_gc_time_ratio_from_conf_beside_utc(spark, config):
    assert config.spark.gc_time_ratio == 4  # base.yaml's, which test.yaml keeps
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    arguments = list(runtime.getInputArguments())
    assert "-XX:GCTimeRatio=4" in arguments
    assert "-Duser.timezone=UTC" in arguments


def test_no_gc_time_ratio_leaves_the_jvms_default(config):
    assert session.driver_java_options(config.spark.model_copy(update={"gc_time_ratio": None})) == [
        "-Duser.timezone=UTC"
    ]


def test_the_cap_goes_to_child_processes_through_the_environment(monkeypatch):
    monkeypatch.setenv(memory.ENVIRONMENT, "")  # recorded, so the value set below is undone after
    monkeypatch.delenv(memory.ENVIRONMENT)
    memory.limit_child_arenas(2)
    assert os.environ[memory.ENVIRONMENT] == "2"


def test_a_cap_already_in_the_environment_is_kept(monkeypatch):
    monkeypatch.setenv(memory.ENVIRONMENT, "1")
    memory.limit_child_arenas(4)
    assert os.environ[memory.ENVIRONMENT] == "1"


def test_no_cap_leaves_the_environment_alone(monkeypatch):
    monkeypatch.delenv(memory.ENVIRONMENT, raising=False)
    memory.limit_child_arenas(None)
    assert memory.ENVIRONMENT not in os.environ


# Eight threads allocating at once, then glibc's own count of its arenas (malloc_stats prints
# one "Arena N:" block per arena to stderr).
ARENAS = """
import ctypes, sys, threading
from ld_spark import memory
memory.limit_arenas(int(sys.argv[1]))
start = threading.Barrier(8)
def work():
    start.wait()
    kept = [bytearray(1024) for _ in range(20_000)]
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def _arenas(cap: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", ARENAS, str(cap)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != memory.ENVIRONMENT},
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@glibc
def test_the_process_makes_no_more_arenas_than_the_cap():
    assert _arenas(1) == 1
    assert _arenas(64) > 1  # the same threads without a cap do make more: the count can tell


@glibc
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
