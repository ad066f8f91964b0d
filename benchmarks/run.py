"""The performance benchmark: every stage at several scales, and the peers on the same inputs.

    .venv/bin/python benchmarks/run.py                      # scales 0.25 1 4, seed 1
    .venv/bin/python benchmarks/run.py --scales 0.25 1 --no-peers

For each scale, in fresh processes: generate a synthetic extract (timed apart: generation is not
part of the job), run `ld-spark run` on it (local[*], a private sqlite MLflow store) while sampling
the RSS of its whole process tree, then run the peers of benchmarks/peers.py on that run's inputs.
Per stage: wall seconds (the job's own `stage_seconds.*` MLflow metrics), peak RSS inside the
stage's time window, input rows and rows per second. Writes, under benchmarks/results/:
  stages.csv / stages.md   one row per scale and stage (+ the whole run)
  peers.csv                one row per scale: event series Spark vs DuckDB vs pandas,
                           linkage Spark job vs Splink-DuckDB (seconds and F1)
  scaling.png              log-log time against scale per stage, with the fitted exponent
Results are appended per scale as they finish, so an interrupted benchmark keeps what it measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_generate import machine  # noqa: E402
from proctree import run_sampled  # noqa: E402

STAGES = ["landing", "bronze", "linkage", "series", "effects"]
# What each stage reads, for rows per second: Delta tables of the finished run (row counts from
# the Delta log's per-file statistics, so no engine is started to count them).
STAGE_INPUT = {
    "landing": ("linkage/landing", "raw rows, every table"),
    "bronze": ("linkage/landing", "landed rows, every table"),
    "linkage": ("linkage/record_person_identity", "identity records linked"),
    "series": ("linkage/record_person", "linked records (identity + event tables)"),
    "effects": ("analysis/panel", "person-month panel rows"),
}
STAGE_FIELDS = ["scale", "stage", "seconds", "peak_rss_gib", "input_rows", "rows_per_second"]
PEER_FIELDS = [
    "scale",
    "events",
    "panel_rows",
    "series_spark_first_seconds",
    "series_spark_seconds",
    "series_duckdb_seconds",
    "series_pandas_seconds",
    "spark_vs_duckdb",
    "spark_vs_pandas",
    "panel_rows_differing",
    "identity_tuples",
    "linkage_job_seconds",
    "splink_duckdb_seconds",
    "linkage_job_vs_splink_duckdb",
    "f1_min_job",
    "f1_min_splink_duckdb",
    "f1_mean_job",
    "f1_mean_splink_duckdb",
]


def delta_rows(table: Path) -> int:
    """Rows in a Delta table's current version, summed from the log's add/remove statistics."""
    live: dict[str, int] = {}
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = json.loads(action["add"]["stats"])["numRecords"]
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    return sum(live.values())


def rows_under(path: Path) -> int:
    """A Delta table's rows, or the sum over the Delta tables below a directory."""
    if (path / "_delta_log").exists():
        return delta_rows(path)
    return sum(delta_rows(log.parent) for log in path.rglob("_delta_log"))


def checked(cmd: list[str], log: Path, env: dict, what: str) -> tuple[float, list]:
    seconds, samples, code = run_sampled(cmd, log, env)
    if code != 0:
        sys.exit(f"benchmark: {what} failed (exit {code}); see {log}:\n{log.read_text()[-3000:]}")
    return seconds, samples


def stage_windows(tracking_uri: str) -> dict[str, tuple[float, float]]:
    """stage -> (start, end) epoch seconds, from the metric's value and the time it was logged."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    run = client.search_runs([client.get_experiment_by_name("ld-spark").experiment_id])[0]
    windows = {}
    for stage in STAGES:
        metric = client.get_metric_history(run.info.run_id, f"stage_seconds.{stage}")[0]
        end = metric.timestamp / 1000
        windows[stage] = (end - metric.value, end)
    return windows


def peak_in(samples: list, start: float, end: float) -> int:
    inside = [rss for t, rss in samples if start <= t <= end]
    return max(inside) if inside else 0


def peer(kind: str, args: list[str], work: Path, log: Path, env: dict) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), kind, *args, "--work", str(work)]
    checked(cmd, log, env, f"peer {kind}")
    line = next(ln for ln in log.read_text().splitlines() if ln.startswith("PEER "))
    return json.loads(line[len("PEER ") :])


def bench_scale(scale: float, seed: int, work: Path, peers: bool) -> tuple[list[dict], dict | None]:
    ld_spark = str(Path(sys.executable).parent / "ld-spark")
    raw, out = work / f"raw_{scale}", work / f"out_{scale}"
    tracking_uri = f"sqlite:///{work / f'mlflow_{scale}.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "LD_SPARK_HMAC_KEY": os.environ.get("LD_SPARK_HMAC_KEY", secrets.token_hex(32)),
        "PYTHONPATH": str(ROOT),
    }
    generated, _ = checked(
        [ld_spark, "generate", "--scale", str(scale), "--seed", str(seed), "--out", str(raw)],
        work / f"generate_{scale}.log",
        env,
        f"generate at scale {scale}",
    )
    from ld_spark import config, session

    heap = session.driver_heap(config.load("local").spark, raw)
    print(f"scale {scale}: generated in {generated:.0f} s; the run's driver heap {heap}", flush=True)
    seconds, samples = checked(
        [ld_spark, "run", "--raw", str(raw), "--out", str(out)],
        work / f"run_{scale}.log",
        env,
        f"ld-spark run at scale {scale}",
    )
    windows = stage_windows(tracking_uri)
    counted = {table: rows_under(out / table) for table, _ in STAGE_INPUT.values()}
    rows = []
    for stage in STAGES:
        start, end = windows[stage]
        n = counted[STAGE_INPUT[stage][0]]
        rows.append(
            {
                "scale": scale,
                "stage": stage,
                "seconds": round(end - start, 1),
                "peak_rss_gib": round(peak_in(samples, start, end) / 2**30, 2),
                "input_rows": n,
                "rows_per_second": round(n / (end - start)),
            }
        )
    landed = counted["linkage/landing"]
    rows.append(
        {
            "scale": scale,
            "stage": "run (process)",
            "seconds": round(seconds, 1),
            "peak_rss_gib": round(max(r for _, r in samples) / 2**30, 2),
            "input_rows": landed,
            "rows_per_second": round(landed / seconds),
        }
    )
    print(
        f"scale {scale}: ld-spark run {seconds:.0f} s; "
        + ", ".join(f"{r['stage']} {r['seconds']} s" for r in rows[:-1]),
        flush=True,
    )
    result = None
    if peers:
        s = peer("series", ["--out", str(out)], work / "peer_series", work / f"peer_series_{scale}.log", env)
        k = peer(
            "linkage",
            ["--raw", str(raw), "--out", str(out)],
            work / "peer_linkage",
            work / f"peer_linkage_{scale}.log",
            env,
        )
        job_linkage = next(r["seconds"] for r in rows if r["stage"] == "linkage")
        result = {
            "scale": scale,
            "events": s["events"],
            "panel_rows": s["panel_rows"],
            "series_spark_first_seconds": s["spark_first_seconds"],
            "series_spark_seconds": s["spark_seconds"],
            "series_duckdb_seconds": s["duckdb_seconds"],
            "series_pandas_seconds": s["pandas_seconds"],
            "spark_vs_duckdb": s["spark_vs_duckdb"],
            "spark_vs_pandas": s["spark_vs_pandas"],
            "panel_rows_differing": s["rows_differing_duckdb"] + s["rows_differing_pandas"],
            "identity_tuples": k["tuples"],
            "linkage_job_seconds": job_linkage,
            "splink_duckdb_seconds": k["splink_duckdb_seconds"],
            "linkage_job_vs_splink_duckdb": round(job_linkage / k["splink_duckdb_seconds"], 2),
            "f1_min_job": k["f1_min_spark_job"],
            "f1_min_splink_duckdb": k["f1_min_splink_duckdb"],
            "f1_mean_job": k["f1_mean_spark_job"],
            "f1_mean_splink_duckdb": k["f1_mean_splink_duckdb"],
        }
        (RESULTS / f"linkage_f1_scale_{scale}.json").write_text(
            json.dumps(k["f1_by_source"], indent=1, sort_keys=True) + "\n"
        )
        print(f"scale {scale}: peers {json.dumps(result)}", flush=True)
    shutil.rmtree(raw)
    shutil.rmtree(out)
    return rows, result


def append(path: Path, fields: list[str], rows: list[dict], fresh: bool) -> None:
    with path.open("w" if fresh else "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if fresh:
            writer.writeheader()
        writer.writerows(rows)


def exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(seconds) on log(scale)."""
    if len(points) < 2:
        return None
    xs, ys = [math.log(s) for s, _ in points], [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def heap_rule(spark) -> str:
    """How the runs' heap was chosen (conf/base.yaml's spark.driver_memory)."""
    if spark.driver_memory != "auto":
        return spark.driver_memory
    h = spark.heap
    return (
        f"auto ({h.base} + {h.per_raw_byte:g} x the bytes of the extract's table files, parquet's counted "
        f"{h.parquet_as_csv:g} times, at most {h.max})"
    )


def summarise(seed: int, started: str, note: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with (RESULTS / "stages.csv").open() as handle:
        stages = list(csv.DictReader(handle))
    peers = []
    if (RESULTS / "peers.csv").exists():
        with (RESULTS / "peers.csv").open() as handle:
            peers = list(csv.DictReader(handle))
    by_stage: dict[str, list[tuple[float, float]]] = {}
    for r in stages:
        by_stage.setdefault(r["stage"], []).append((float(r["scale"]), float(r["seconds"])))
    slopes = {stage: exponent(points) for stage, points in by_stage.items()}

    fig, ax = plt.subplots(figsize=(7, 5))
    for stage, points in by_stage.items():
        ax.plot(
            *zip(*points),
            marker="o",
            label=f"{stage} (exponent {slopes[stage]:.2f})" if slopes[stage] is not None else stage,
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="scale (1 = about 1.4M raw rows)",
        ylabel="wall seconds",
        title="ld-spark run: time against scale, per stage",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "scaling.png", dpi=110)

    from ld_spark import config

    spark = config.load("local").spark  # what `ld-spark run` (no --conf) ran with
    lines = [
        f"# Benchmark: every stage against scale ({started})",
        "",
        f"Machine: {machine()}; {spark.master}, {spark.shuffle_partitions} shuffle partitions, "
        f"driver heap {heap_rule(spark)}; seed {seed}. "
        "`benchmarks/run.py` (one command). Generation is excluded from the job's time. "
        "Seconds are the job's own stage timers; peak RSS is the whole process tree (driver JVM, "
        "Python, Python workers; leaving out a fork of the JVM that has not yet exec'd its command) "
        "sampled every 0.5 s inside the stage's window; rows per second divides the stage's input "
        "rows by its seconds." + (f" {note}" if note else ""),
        "",
        "Input rows: " + "; ".join(f"{s}: {d}" for s, (_, d) in STAGE_INPUT.items()) + ".",
        "",
        "| " + " | ".join(STAGE_FIELDS) + " |",
        "|" + "---|" * len(STAGE_FIELDS),
    ]
    lines += ["| " + " | ".join(r[f] for f in STAGE_FIELDS) + " |" for r in stages]
    lines += [
        "",
        "## Exponent of time against scale (least squares on log-log; 1 = linear)",
        "",
        "| stage | exponent | scales |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s} | {'' if e is None else f'{e:.2f}'} | {', '.join(str(p[0]) for p in by_stage[s])} |"
        for s, e in slopes.items()
    ]
    if peers:
        lines += [
            "",
            "## Peers on the same inputs",
            "",
            "Event series: dated events + index -> the zero-filled person x cohort x month panel "
            "(months -24..+12, one count per outcome), read from and written to parquet; each engine runs it "
            "3 times and its best time is compared (`series_spark_first_seconds`: Spark's first run, "
            "code generation and JVM warm-up included); "
            "`panel_rows_differing` counts rows where the three panels disagree (0 = identical). "
            "Linkage: the job's whole linkage stage (tuples, Splink on Spark, deterministic links, "
            "components, keys, writes) against Splink 5 on DuckDB with the same settings, training and "
            "threshold plus Splink's clustering, on the same identity tuples; F1 is the job's pairwise F1 "
            "per source table against `_truth` (min and mean over the 7 sources).",
            "",
            "| " + " | ".join(PEER_FIELDS) + " |",
            "|" + "---|" * len(PEER_FIELDS),
        ]
        lines += ["| " + " | ".join(r[f] for f in PEER_FIELDS) + " |" for r in peers]
    lines += ["", "![time against scale](scaling.png)"]
    (RESULTS / "stages.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument(
        "--append", action="store_true", help="add these scales to the existing results instead of starting them anew"
    )
    parser.add_argument("--note", default="", help="a sentence for the results table (e.g. what else ran)")
    args = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ld-bench-"))
    try:
        for i, scale in enumerate(args.scales):
            rows, peers = bench_scale(scale, args.seed, work, args.peers)
            append(RESULTS / "stages.csv", STAGE_FIELDS, rows, fresh=i == 0 and not args.append)
            if peers:
                append(RESULTS / "peers.csv", PEER_FIELDS, [peers], fresh=i == 0 and not args.append)
            summarise(args.seed, started, args.note)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"benchmark: results in {RESULTS / 'stages.md'}")


if __name__ == "__main__":
    main()
