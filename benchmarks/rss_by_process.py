"""Where a run's memory is: run a command, sample the RSS of its process tree every 0.5 s split by
kind of process (the JVM, the Python driver, Python workers), and print the peak of each kind and
the peak in each stage (the window up to each line the command prints: `ld-spark run` prints a
line as each stage ends). Counted as in proctree.py (tree_rss_by_kind): worker RSS is summed per
process, so pages a forked worker shares with the daemon count twice; a fork of the JVM that has not
yet exec'd its command is left out. The samples go to OUT.json for a closer look.

    .venv/bin/python benchmarks/rss_by_process.py OUT -- .venv/bin/ld-spark run --raw RAW --out DIR --conf X

Used for benchmarks/results/driver_memory.md (how big the driver's heap need be).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import _children, run_echoed, tree_rss_by_kind  # noqa: E402

GIB = 2**30


def sample(root: int, samples: list, done: threading.Event) -> None:
    while not done.is_set():
        samples.append((time.time(), tree_rss_by_kind(root, _children())))
        time.sleep(0.5)


def main() -> None:
    out, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
    rc, t0, wall, lines, samples = run_echoed(cmd, sample)
    peak = max((sum(b.values()) for _, b in samples), default=0)
    print(f"rc={rc} wall={wall:.1f}s peak_total={peak / GIB:.2f} GiB")
    for k in sorted({k for _, b in samples for k in b}):
        print(f"  peak {k}: {max(b.get(k, 0) for _, b in samples) / GIB:.2f} GiB")
    for i, (t, text) in enumerate(lines):
        window = [b for s, b in samples if (lines[i - 1][0] if i else t0) <= s <= t]
        if window:
            top = max(window, key=lambda b: sum(b.values()))
            parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in sorted(top.items()))
            print(f"  until '{text[:50]}': peak {sum(top.values()) / GIB:.2f} ({parts})")
    Path(out + ".json").write_text(json.dumps({"wall": wall, "samples": samples}))


if __name__ == "__main__":
    main()
