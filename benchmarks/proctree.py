"""Run a command and sample the summed RSS of its whole process tree (driver, JVM, Python workers;
leaving out a fork of the JVM that has not yet exec'd its command: tree_rss_by_kind)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def kind_of_argv(argv: list[str]) -> str:
    """jvm, pyworker (pyspark's daemon and its workers), python or other, from a command line."""
    line = " ".join(argv)
    if argv and Path(argv[0]).name == "java":
        return "jvm"
    if any(m in line for m in ("pyspark.daemon", "pyspark/daemon.py", "pyspark.worker", "pyspark/worker.py")):
        return "pyworker"
    return "python" if "python" in line else "other"


def kind(pid: int) -> str:
    """kind_of_argv of a running process, or gone (it exited)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    return kind_of_argv(argv)


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError):
        return 0


def tree_rss_by_kind(
    root: int,
    children: dict[int, list[int]],
    kind_of: Callable[[int], str] = kind,
    rss_of: Callable[[int], int] = rss_bytes,
) -> dict[str, int]:
    """Summed RSS of `root` and its descendants, by kind of process.

    A JVM child of the JVM is left out: in local mode the JVM starts no JVM of its own (the
    executors are threads), so such a child is the JVM forked to run a command (Hadoop's shell
    calls) that has not yet exec'd it, and its RSS is the JVM's own pages, shared. pyspark's
    workers are forked from its daemon too, but then run and allocate on their own: each counts
    whole, so pages they still share with the daemon count twice (on the safe side)."""
    totals: dict[str, int] = {}
    stack = [(root, None)]
    while stack:
        pid, parent_kind = stack.pop()
        this_kind = kind_of(pid)
        if not (this_kind == "jvm" and parent_kind == "jvm"):
            totals[this_kind] = totals.get(this_kind, 0) + rss_of(pid)
        stack.extend((child, this_kind) for child in children.get(pid, []))
    return totals


def _tree_rss_bytes(root: int) -> int:
    return sum(tree_rss_by_kind(root, _children()).values())


def run_sampled(
    cmd: list[str], log: Path, env: dict | None = None, interval: float = 0.5
) -> tuple[float, list[tuple[float, int]], int]:
    """(wall seconds, [(epoch seconds, tree RSS bytes)] every `interval`, exit code)."""
    samples: list[tuple[float, int]] = []
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.time(), _tree_rss_bytes(proc.pid)))
                time.sleep(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    return time.perf_counter() - started, samples, code


def run_measured(cmd: list[str], log: Path, interval: float = 0.5) -> tuple[float, int, int]:
    """(wall seconds, peak tree RSS in bytes, exit code)."""
    seconds, samples, code = run_sampled(cmd, log, interval=interval)
    return seconds, max((rss for _, rss in samples), default=0), code


def run_echoed(
    cmd: list[str], sample: Callable[[int, list, threading.Event], None]
) -> tuple[int, float, float, list[tuple[float, str]], list]:
    """Run `cmd`, printing each line it prints after the seconds since its start, while
    `sample(pid, samples, done)` fills `samples` in a thread of its own until `done` is set.
    Returns (exit code, start in epoch seconds, wall seconds, [(epoch seconds, line)], samples)."""
    samples: list = []
    done = threading.Event()
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = threading.Thread(target=sample, args=(proc.pid, samples, done), daemon=True)
    sampler.start()
    lines = []
    for text in proc.stdout:
        lines.append((time.time(), text.rstrip()))
        print(f"{time.time() - t0:7.1f} {text.rstrip()}", flush=True)
    rc = proc.wait()
    done.set()
    sampler.join()
    return rc, t0, time.time() - t0, lines, samples
