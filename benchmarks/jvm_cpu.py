"""Where the JVM's CPU goes: run a command, read the CPU time of every thread of the JVMs in its
process tree every 2 s (/proc/<pid>/task/<tid>/stat), and print it by kind of thread for the
whole run and for each stage (the window up to each line the command prints: `ld-spark run`
prints a line as each stage ends). The samples go to OUT.json.

    .venv/bin/python benchmarks/jvm_cpu.py OUT -- .venv/bin/ld-spark run --raw RAW --out DIR --conf X

Kinds, by the thread's name: `tasks` (Spark's executor threads: the queries' rows), `jit-c2` and
`jit-c1` (HotSpot's compilers), `gc`, `py4j` (unnamed `Thread-N` threads, which is how py4j's
threads serving the Python driver's calls are named: query planning, Catalyst and Delta's
commits, though other unnamed threads count there too), `java` (the main thread), and the rest
by name. A thread's CPU between two samples counts in the later one's stage, so up to 2 s of a
stage's tail goes to the next; a thread that ends between samples loses its last 2 s, and so
does the JVM's last interval.

Used for benchmarks/results/jit.md.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import _children, run_echoed  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
# Thread names (/proc's comm: at most 15 characters) -> kind, first match wins.
KINDS = [
    ("Executor task l", "tasks"),
    ("C2 CompilerThre", "jit-c2"),
    ("C1 CompilerThre", "jit-c1"),
    ("GC Thread", "gc"),
    ("G1 ", "gc"),
    ("Thread-", "py4j"),
    ("dag-scheduler", "scheduler"),
]


def kind_of(thread: str) -> str:
    """The kind of a thread, from its name (KINDS; else the name without its number)."""
    for prefix, kind in KINDS:
        if thread.startswith(prefix):
            return kind
    return re.sub(r"[-_ #]?\d+$", "", thread)


def jvms(root: int) -> list[int]:
    """The JVMs among `root` and its descendants."""
    tree, stack, found = _children(), [root], []
    while stack:
        pid = stack.pop()
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if b"java" in argv0:
            found.append(pid)
        stack.extend(tree.get(pid, []))
    return found


def thread_cpu(pid: int) -> dict[tuple[int, str, str], tuple[str, float]]:
    """(pid, tid, start) -> (kind, CPU seconds so far: user + system) of every thread of the
    process; the start time tells a reused thread id from the thread that had it."""
    cpu = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return cpu
    for tid in tids:
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu[(pid, tid, fields[19])] = (kind_of(name), (int(fields[11]) + int(fields[12])) / TICK)
    return cpu


def sample(root: int, samples: list, done: threading.Event) -> None:
    """Every 2 s until `done`: (time, {kind: CPU seconds its threads used since the last sample})."""
    last: dict = {}
    while not done.is_set():
        now: dict = {}
        for pid in jvms(root):
            now.update(thread_cpu(pid))
        used: Counter = Counter()
        for key, (kind, seconds) in now.items():
            used[kind] += max(0.0, seconds - last.get(key, (kind, 0.0))[1])
        last = now
        samples.append((time.time(), dict(used)))
        time.sleep(2)


def line(used: Counter, top: int = 7) -> str:
    """CPU seconds in all, then the `top` kinds that used most."""
    return f"{sum(used.values()):6.1f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in used.most_common(top))


def main() -> None:
    """Run the command after `--`, print its lines, then the JVMs' CPU; exits with its code."""
    out, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
    rc, t0, wall, lines, samples = run_echoed(cmd, sample)
    if not samples:
        raise SystemExit(f"no samples: the command ran {wall:.1f} s")
    total = sum((Counter(u) for _, u in samples), Counter())
    print(f"rc={rc} wall={wall:.1f}s JVM CPU {line(total, 12)}")
    for i, (t, text) in enumerate(lines):
        start = lines[i - 1][0] if i else t0
        window = sum((Counter(u) for s, u in samples if start < s <= t), Counter())
        if window:
            print(f"  until '{text[:40]}': {line(window)}")
    Path(out + ".json").write_text(json.dumps({"wall": wall, "samples": samples, "lines": lines}))
    raise SystemExit(rc)


if __name__ == "__main__":
    main()
