"""Where a run's time goes, from Spark's own event log: per stage, and per line of our code.

    .venv/bin/python benchmarks/spark_profile.py --scale 1 --work /tmp/profile

Generates the extract (once, seed 1) and runs `ld-spark run --conf local` on it with Spark's
event log on, from this checkout (Spark's Python workers import ld_spark from the working
directory). Each stage's window is its `stage_seconds.<stage>` MLflow metric (logged at the
stage's end). In each window:

- wall: the stage's seconds;
- spark busy: the union of the intervals in which at least one Spark job ran;
- driver only: wall less spark busy: Python, DuckDB, Delta's commits and MLflow calls;
- of which writing tables: the busy time of the jobs of the tables' writes (computing the rows
  they write included: a write runs its query);
- jobs: how many Spark jobs it ran (a job is a few hundred ms of scheduling however small).

Then the call sites by their busy time: the union of their jobs' intervals (adaptive execution
runs a query's stages as jobs side by side), over the run and within each stage. A job's call
site is the table it writes (every job of a table's write is described so, io.job_description),
else Spark's `callSite.short` (the action and the line of Python that ran it), else what Delta
said it did, or the job's first stage. Writes benchmarks/results/profile_scale_<scale>.md (and
prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
from collections import defaultdict
from pathlib import Path

from ld_spark.io import JOB_PREFIX

ROOT = Path(__file__).resolve().parent.parent
# What catalog's writes are described as, after io.JOB_PREFIX ("ld-spark: write analysis/panel").
WRITES = ("write ", "append to ", "merge into ")
RESULTS = ROOT / "benchmarks" / "results"
STAGES = ["landing", "bronze", "linkage", "series", "effects", "sensitivity", "release"]


def busy(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of (start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def jobs_of(event_log: Path) -> list[dict]:
    """Every Spark job of the event log: start, end (seconds since the epoch) and call site."""
    started, ended = {}, {}
    with event_log.open() as f:
        for line in f:
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerJobStart":
                started[event["Job ID"]] = (event["Submission Time"] / 1000, label(event))
            elif kind == "SparkListenerJobEnd":
                ended[event["Job ID"]] = event["Completion Time"] / 1000
    return [{"start": s, "end": ended[j], "site": site} for j, (s, site) in started.items() if j in ended]


def label(job_start: dict) -> str:
    """What ran a job: the table it writes (the job description io.job_description set, which
    Delta's own jobs inside the write keep after their "Delta: " prefix), else the line of our
    Python that called the action where Spark recorded it, else what Delta said it was doing,
    else its first stage's name."""
    props = job_start.get("Properties") or {}
    site = props.get("callSite.short")
    description = props.get("spark.job.description") or ""
    stages = job_start.get("Stage Infos") or [{}]
    stage = stages[0].get("Stage Name", "")
    written = re.search(f"{re.escape(JOB_PREFIX)}([^:]+)", description)
    if written:  # every job of a table's write, Delta's among them
        return written.group(1)
    if site:
        return short_site(site)
    if "Compute snapshot" in description:
        return "Delta: compute a table's snapshot (state from its log)"
    if description.startswith("Delta"):
        return "Delta: " + description.split(":")[-1].strip().lower()
    if "recordDeltaOperation" in description + stage:
        return "Delta: an operation (write, commit, checkpoint)"
    if "withThreadLocalCaptured" in stage:
        return "a broadcast or adaptive query stage (no call site)"
    return f"within {short_site(stage)}"


def short_site(site: str) -> str:
    """`count at /abs/path/ld_spark/x.py:12` -> `count at ld_spark/x.py:12`."""
    return re.sub(r"\S*/(ld_spark|benchmarks|splink|pyspark|delta)/", r"\1/", site)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ld_spark_profile"))
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--top-per-stage", type=int, default=5)
    parser.add_argument("--run-id", help="analyse this earlier run of --work (its event log given) instead of running")
    parser.add_argument("--event-log", type=Path)
    parser.add_argument("--spark-conf", nargs="*", default=[], help="KEY=VALUE Spark settings to try")
    parser.add_argument("--label", default="", help="suffix of the results file (e.g. what --spark-conf tried)")
    args = parser.parse_args()

    work = args.work.resolve()
    raw, out, events = work / f"raw_{args.scale}", work / f"out_{args.scale}", work / "events"
    events.mkdir(parents=True, exist_ok=True)
    python = str(ROOT / ".venv" / "bin" / "python")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    if not raw.exists():
        subprocess.run(
            [python, "-m", "ld_spark.cli", "generate", "--scale", str(args.scale), "--seed", "1", "--out", str(raw)],
            cwd=ROOT,
            env=env,
            check=True,
        )
    overlay = work / "profile.yaml"
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    overlay.write_text(
        json.dumps(
            {
                "spark": {
                    "extra": {
                        "spark.eventLog.enabled": "true",
                        "spark.eventLog.dir": f"file://{events}",
                        # one plain JSON-lines file (Spark 4 rolls and compresses it by default)
                        "spark.eventLog.rolling.enabled": "false",
                        "spark.eventLog.compress": "false",
                        **dict(kv.split("=", 1) for kv in args.spark_conf),
                    }
                },
                "mlflow": {"tracking_uri": tracking},
            }
        )
    )
    if args.run_id:
        report(args, tracking, args.run_id, args.event_log)
        return
    before = set(events.iterdir())
    done = subprocess.run(
        [
            python,
            "-m",
            "ld_spark.cli",
            "run",
            "--raw",
            str(raw),
            "--out",
            str(out),
            "--conf",
            "local",
            "--conf",
            str(overlay),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    print(done.stdout)
    run_id = re.search(r"MLflow run (\w+)", done.stdout).group(1)
    (event_log,) = set(events.iterdir()) - before
    report(args, tracking, run_id, event_log)


def report(args: argparse.Namespace, tracking: str, run_id: str, event_log: Path) -> None:
    """The tables of the docstring, printed and written to benchmarks/results/."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking)
    windows = {}
    for stage in STAGES:
        history = client.get_metric_history(run_id, f"stage_seconds.{stage}")
        if history:
            end = history[-1].timestamp / 1000
            windows[stage] = (end - history[-1].value, end)
    jobs = jobs_of(event_log)

    rows, per_stage = [], []
    for stage, (start, end) in windows.items():
        within = [j for j in jobs if j["start"] < end and j["end"] > start]
        inside = [(max(j["start"], start), min(j["end"], end)) for j in within]
        spark_busy = busy(inside)
        writes = busy([i for j, i in zip(within, inside) if j["site"].startswith(WRITES)])
        rows.append((stage, end - start, spark_busy, writes, end - start - spark_busy, len(inside)))
        stage_sites: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for j, interval in zip(within, inside):
            stage_sites[j["site"]].append(interval)
        for site, d in sorted(stage_sites.items(), key=lambda kv: -busy(kv[1]))[: args.top_per_stage]:
            per_stage.append(f"| {stage} | `{site}` | {len(d)} | {busy(d):.1f} |")
    by_site: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for j in jobs:
        by_site[j["site"]].append((j["start"], j["end"]))
    sites = sorted(by_site.items(), key=lambda kv: -busy(kv[1]))[: args.top]

    lines = [
        f"# Where the time goes: `ld-spark run` at scale {args.scale:g}, from Spark's event log"
        + (f" ({' '.join(args.spark_conf)})" if args.spark_conf else ""),
        "",
        f"Machine: {os.cpu_count()} cores, {platform.system()}; `--conf local`; seed 1. "
        "`benchmarks/spark_profile.py` (see its docstring for the columns).",
        "",
        "| stage | wall s | spark busy s | of which writing tables s | driver only s | spark jobs |",
        "|---|---|---|---|---|---|",
        *[f"| {s} | {w:.1f} | {b:.1f} | {t:.1f} | {d:.1f} | {n} |" for s, w, b, t, d, n in rows],
        f"| total | {sum(r[1] for r in rows):.1f} | {sum(r[2] for r in rows):.1f} | "
        f"{sum(r[3] for r in rows):.1f} | {sum(r[4] for r in rows):.1f} | {sum(r[5] for r in rows)} |",
        "",
        f"Call sites with the most busy time (top {args.top}; all {len(jobs)} jobs):",
        "",
        "| call site | jobs | busy s | longest job s |",
        "|---|---|---|---|",
        *[f"| `{site}` | {len(d)} | {busy(d):.1f} | {max(e - s for s, e in d):.1f} |" for site, d in sites],
        "",
        f"Each stage's call sites with the most busy time in its window (top {args.top_per_stage}):",
        "",
        "| stage | call site | jobs | busy s |",
        "|---|---|---|---|",
        *per_stage,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    suffix = f"_{args.label}" if args.label else ""
    (RESULTS / f"profile_scale_{args.scale:g}{suffix}.md").write_text(text)


if __name__ == "__main__":
    main()
