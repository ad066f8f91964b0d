"""Monthly refresh at scale: month 1 in full, month 2 incrementally and in full, the same run
again (nothing new), `ld-spark forget` of some people, and the run after it.

    .venv/bin/python benchmarks/refresh.py --scale 1 --forget 20

Generates the extract (or reuses --raw) and splits it in two months: month 1 holds the first
12/13 of the records of every raw file, month 2 adds the last 1/13 of each as a new file beside
it (records split as the landing parser splits them, bytes unchanged). Then times each step as a
user runs it (`ld-spark` commands, each a process of its own, `--conf local`):
- month 1, a full run into a fresh OUT_DIR; month 2 into the same OUT_DIR (incremental);
- month 2 again: nothing new; `ld-spark forget`; month 2 once more, after forget;
- month 2 in full into a second fresh OUT_DIR, the run the incremental one replaces; the two
  reconciliations (every raw row's state) are compared.
The people to forget are the first N distinct valid NHS numbers of ld_referrals (read here,
written to a request file in a temporary folder that is deleted after; never printed). Writes
benchmarks/results/refresh.md and prints it.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from ld_spark.erase import valid_nhs_number  # noqa: E402
from ld_spark.io import csv_records  # noqa: E402

MONTHS = 13  # month 2 brings the last 1/13 of every raw file's records

CLI = [sys.executable, "-m", "ld_spark.cli"]


def timed(args: list[str], env: dict) -> tuple[float, str]:
    started = time.time()
    done = subprocess.run([*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.time() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:1])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def numbers(raw: Path, n: int) -> list[str]:
    found: list[str] = []
    for path in sorted((raw / "ld_referrals").glob("*.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                valid = valid_nhs_number(row["nhs_number"] or "")
                if valid and valid not in found:
                    found.append(valid)
                if len(found) == n:
                    return found
    return found


def split_months(raw: Path, one: Path, two: Path) -> None:
    """Month 1 and month 2 folders from one extract (see the docstring); _truth/ goes with both."""
    for source in sorted(p for p in raw.rglob("*.csv") if "_truth" not in p.parts):
        with source.open("rb") as handle:
            header = handle.readline()
            records = [record for _, record, _ in csv_records(handle)]
        if records and not records[-1].endswith(b"\n"):
            records[-1] += b"\n"
        cut = len(records) - len(records) // MONTHS
        relative = source.relative_to(raw)
        for root in (one, two):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (one / relative).write_bytes(header + b"".join(records[:cut]))
        os.link(one / relative, two / relative)
        (two / relative.with_name(f"{relative.stem}-month2.csv")).write_bytes(header + b"".join(records[cut:]))
    for root in (one, two):
        subprocess.run(["cp", "-r", str(raw / "_truth"), str(root / "_truth")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--forget", type=int, default=20, help="how many people to forget")
    parser.add_argument("--raw", type=Path, help="an extract to reuse (default: generate one)")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "bench_refresh")
    args = parser.parse_args()

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{args.work / 'mlflow.db'}"}
    args.work.mkdir(parents=True, exist_ok=True)
    raw = args.raw or args.work / f"raw_{args.scale}"
    if args.raw is None:
        timed(["generate", "--scale", str(args.scale), "--seed", str(args.seed), "--out", str(raw)], env)
    one, two = args.work / f"month1_{args.scale}", args.work / f"month2_{args.scale}"
    out, full_out = args.work / f"out_{args.scale}", args.work / f"out_full_{args.scale}"
    for folder in (one, two, out, full_out):
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    split_months(raw, one, two)

    def run(month: Path, into: Path) -> list[str]:
        return ["run", "--raw", str(month), "--out", str(into), "--conf", "local"]

    steps = []
    full, _ = timed(run(one, out), env)
    steps.append(("month 1, full run", full, ""))
    incremental, printed = timed(run(two, out), env)
    said = re.search(r"incremental since run \S+ \d+ new files in \d+ tables, [\d,]+ raw rows", printed)
    steps.append(("month 2, incremental", incremental, said.group(0) if said else "NOT INCREMENTAL"))
    reconciled = (out / "linkage" / "reconciliation.csv").read_text()
    again, printed = timed(run(two, out), env)
    steps.append(("month 2 again", again, "nothing new" if "nothing new" in printed else "RAN"))
    with tempfile.TemporaryDirectory() as folder:
        request = Path(folder) / "opt_out.csv"
        chosen = numbers(two, args.forget)
        request.write_text("nhs_number\n" + "\n".join(chosen) + "\n")
        erased, printed = timed(["forget", "--nhs-numbers", str(request), "--out", str(out), "--conf", "local"], env)
    said = re.search(r"forgot .*?vacuumed", printed)
    steps.append((f"ld-spark forget ({len(chosen)} NHS numbers)", erased, said.group(0) if said else ""))
    after, printed = timed(run(two, out), env)
    erased_again = re.search(r"\d+ opted-out people erased \(\d+ records\)", printed)
    kind = "incremental" if "incremental since run" in printed else "full"
    steps.append(("month 2 after forget", after, f"{kind}; " + (erased_again.group(0) if erased_again else "")))
    whole, _ = timed(run(two, full_out), env)
    same = (full_out / "linkage" / "reconciliation.csv").read_text() == reconciled
    steps.append(("month 2, full run (fresh OUT_DIR)", whole, f"reconciliation equal to the incremental run's: {same}"))

    lines = [
        f"# Monthly refresh at scale {args.scale} (seed {args.seed})",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC; `ld-spark` commands, `--conf local`, one OUT_DIR.",
        "",
        "| step | s | of month 2's full run | what it said |",
        "|---|---|---|---|",
        *[f"| {name} | {s:.1f} | {s / whole:.1%} | {note} |" for name, s, note in steps],
        "",
    ]
    text = "\n".join(lines)
    (ROOT / "benchmarks" / "results" / "refresh.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
