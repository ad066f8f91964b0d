"""Time the synthetic generator at several scales on this machine.

    .venv/bin/python benchmarks/bench_generate.py --scales 0.1 1 [--seed 1]

Each scale runs `ld-spark generate` in a fresh process (local[*]); writes
benchmarks/results/generate.csv and generate.md with wall time, peak memory of the whole
process tree, rows written and rows per second.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> str:
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    cpu = re.search(r"model name\s+:\s+(.*)", Path("/proc/cpuinfo").read_text())
    return f"{os.cpu_count()} cores ({cpu.group(1) if cpu else platform.processor()}), {mem_kb / 2**20:.0f} GiB, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ld_spark = str(Path(sys.executable).parent / "ld-spark")
    rows = []
    work = Path(tempfile.mkdtemp(prefix="ld-bench-"))
    try:
        for scale in args.scales:
            out = work / f"raw_{scale}"
            log = work / f"generate_{scale}.log"
            seconds, peak, code = run_measured(
                [ld_spark, "generate", "--scale", str(scale), "--seed", str(args.seed), "--out", str(out)], log
            )
            if code != 0:
                sys.exit(f"generate at scale {scale} failed; see {log}:\n{log.read_text()[-2000:]}")
            text = log.read_text()
            total = int(re.search(r"generated ([\d,]+) rows", text).group(1).replace(",", ""))
            cohort = int(re.search(r'"n_evaluation": (\d+)', (out / "_truth" / "planted.json").read_text()).group(1))
            size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            rows.append(
                {
                    "scale": scale,
                    "seconds": round(seconds, 1),
                    "peak_rss_gib": round(peak / 2**30, 2),
                    "rows": total,
                    "rows_per_second": round(total / seconds),
                    "evaluation_cohort": cohort,
                    "csv_mib": round(size / 2**20, 1),
                }
            )
            print(rows[-1], flush=True)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "generate.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Synthetic generation ({stamp})",
        "",
        f"Machine: {machine()}; local[*]; seed {args.seed}; "
        "wall time includes Spark start-up; peak RSS is the whole process tree.",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    (RESULTS / "generate.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
