"""Monthly refresh at scale: a full run, the same run again (nothing new), `ld-spark forget` of
some people, and the run after it.

    .venv/bin/python benchmarks/refresh.py --scale 1 --forget 20

Generates the extract (or reuses --raw), then times each step as a user runs it (`ld-spark`
commands, each a process of its own, `--conf local`) into a fresh OUT_DIR. The people to forget are
the first N distinct valid NHS numbers of ld_referrals (read here, written to a request file in a
temporary folder that is deleted after; never printed). Writes benchmarks/results/refresh.md and
prints it: seconds per step, against the full run, and what forget reported.
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
    out = args.work / f"out_{args.scale}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    run = ["run", "--raw", str(raw), "--out", str(out), "--conf", "local"]
    steps = []
    full, _ = timed(run, env)
    steps.append(("full run", full, ""))
    again, printed = timed(run, env)
    steps.append(("the same run again", again, "nothing new" if "nothing new" in printed else "RAN"))
    with tempfile.TemporaryDirectory() as folder:
        request = Path(folder) / "opt_out.csv"
        chosen = numbers(raw, args.forget)
        request.write_text("nhs_number\n" + "\n".join(chosen) + "\n")
        erased, printed = timed(["forget", "--nhs-numbers", str(request), "--out", str(out), "--conf", "local"], env)
    said = re.search(r"forgot .*?vacuumed", printed)
    steps.append((f"ld-spark forget ({len(chosen)} NHS numbers)", erased, said.group(0) if said else ""))
    after, printed = timed(run, env)
    erased_again = re.search(r"\d+ opted-out people erased \(\d+ records\)", printed)
    steps.append(("the run after forget", after, erased_again.group(0) if erased_again else ""))

    lines = [
        f"# Monthly refresh at scale {args.scale} (seed {args.seed})",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC; `ld-spark` commands, `--conf local`, one OUT_DIR.",
        "",
        "| step | s | of the full run | what it said |",
        "|---|---|---|---|",
        *[f"| {name} | {s:.1f} | {s / full:.1%} | {note} |" for name, s, note in steps],
        "",
    ]
    text = "\n".join(lines)
    (ROOT / "benchmarks" / "results" / "refresh.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
