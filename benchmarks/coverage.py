"""Coverage of the 95% intervals: does each estimand's interval hold its planted value?

    .venv/bin/python benchmarks/coverage.py --scale 0.25 --seeds 20 [--first-seed 1]

For each seed: generate a synthetic extract, run the whole pipeline (linkage included) in one
Spark session, and compare results/estimates.csv with _truth/planted.json. Writes
benchmarks/results/coverage_runs.csv (one row per seed and estimand, appended as seeds finish, so
an interrupted run keeps what it measured) and coverage.md (coverage per estimand). With 95%
intervals, coverage over K seeds should be near 0.95; for K = 20 anything from 17/20 up is
within sampling noise of it.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FIELDS = ["scale", "seed", "estimand", "planted", "estimate", "ci_low", "ci_high", "covered", "n", "run_seconds"]


def run_seed(spark, config, scale: float, seed: int, work: Path) -> list[dict]:
    from ld_spark import pipeline
    from ld_spark.synth.generate import generate

    raw, out = work / f"raw_{seed}", work / f"out_{seed}"
    generate(spark, config.generator, seed=seed, scale=scale, out=raw)
    started = time.time()
    pipeline.run(spark, config, raw=str(raw), out=str(out))
    seconds = time.time() - started
    planted = json.loads((raw / "_truth" / "planted.json").read_text())
    with (out / "results" / "estimates.csv").open() as handle:
        estimates = {r["estimand"]: r for r in csv.DictReader(handle)}
    rows = []
    for name, value in planted.items():
        if name.startswith("n_"):
            continue
        r = estimates[name]
        low, high = (float(r["ci_low"]), float(r["ci_high"])) if r["ci_low"] else (None, None)
        rows.append({"scale": scale, "seed": seed, "estimand": name, "planted": value, "estimate": r["estimate"],
                     "ci_low": low, "ci_high": high, "covered": low is not None and low <= value <= high,
                     "n": r["n"], "run_seconds": round(seconds, 1)})
    shutil.rmtree(raw)
    shutil.rmtree(out)
    return rows


def summarise(path: Path) -> str:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    by_scale: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_scale.setdefault(r["scale"], {}).setdefault(r["estimand"], []).append(r)
    lines = ["# Coverage of the 95% intervals", "",
             "`benchmarks/coverage.py`: generate, run the whole pipeline, check each planted value against "
             "its interval; one row per estimand. Machine: " + os.environ.get("LD_BENCH_MACHINE", "this one") + ".", ""]
    for scale, estimands in by_scale.items():
        seeds = sorted({int(r["seed"]) for rs in estimands.values() for r in rs})
        seconds = [float(rs[0]["run_seconds"]) for rs in zip(*estimands.values())] if estimands else []
        lines += [f"## scale {scale}: {len(seeds)} seeds ({min(seeds)}..{max(seeds)}), "
                  f"median `ld-spark run` {sorted(seconds)[len(seconds) // 2]:.0f} s", "",
                  "| estimand | planted | covered | coverage | mean estimate |", "|---|---|---|---|---|"]
        for name, rs in estimands.items():
            covered = sum(r["covered"] == "True" for r in rs)
            values = [float(r["estimate"]) for r in rs if r["estimate"]]
            mean = sum(values) / len(values) if values else float("nan")
            lines.append(f"| {name} | {float(rs[0]['planted']):.3f} | {covered}/{len(rs)} | {covered / len(rs):.2f} | {mean:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--results", type=Path, default=RESULTS / "coverage_runs.csv")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from ld_spark import config as config_module
    from ld_spark import session

    work = Path(tempfile.mkdtemp(prefix="ld-coverage-"))
    config = config_module.load("local")
    config = config.model_copy(update={"mlflow": config.mlflow.model_copy(
        update={"tracking_uri": f"sqlite:///{work / 'mlflow.db'}", "experiment": "ld-spark-coverage"})})
    spark = session.build(config)
    spark.sparkContext.setLogLevel("ERROR")
    new = not args.results.exists()
    try:
        with args.results.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rows = run_seed(spark, config, args.scale, seed, work)
                writer.writerows(rows)
                handle.flush()
                print(f"seed {seed}: {sum(r['covered'] for r in rows)}/{len(rows)} covered "
                      f"({rows[0]['run_seconds']} s)", flush=True)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    (RESULTS / "coverage.md").write_text(summarise(args.results) + "\n")
    print((RESULTS / "coverage.md").read_text())


if __name__ == "__main__":
    main()
