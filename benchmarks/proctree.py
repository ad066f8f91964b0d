"""Run a command and sample the summed RSS of its whole process tree (driver, JVM, Python workers)."""

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


def _tree_rss_bytes(root: int) -> int:
    tree, total, stack = _children(), 0, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError):
            pass
        stack.extend(tree.get(pid, []))
    return total


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
