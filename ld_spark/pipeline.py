"""`ld-spark run`: every stage that exists, raw extracts to results, tracked in MLflow."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from pyspark.sql import SparkSession

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark import bronze, io, tracking
from ld_spark.config import Config
from ld_spark.contract import TABLES

STATES = (bronze.LOADED, bronze.QUARANTINED, bronze.DUPLICATE, bronze.SUPERSEDED)


def landing_path(out: str | Path, table: str) -> Path:
    """Landing copies hold identifiers, so they live in the linkage layer."""
    return linkage_path(out, "landing", table)


def linkage_path(out: str | Path, *parts: str) -> Path:
    return Path(out).joinpath("linkage", *[p.replace("/", "__") for p in parts])


def state_counts(classified: DataFrame) -> dict[str, int]:
    """Rows per bronze state, plus `read`: what the reconciliation reports."""
    counts = {r[bronze.STATUS]: r["count"] for r in classified.groupBy(bronze.STATUS).count().collect()}
    out = {state: int(counts.get(state, 0)) for state in STATES}
    return {"read": sum(out.values()), **out}


def run_bronze(spark: SparkSession, out: Path, run_id: str) -> dict[str, dict[str, int]]:
    """Landing -> typed bronze tables and one quarantine table; returns the reconciliation."""
    reconciled, quarantine_parts, cached = {}, [], []
    for table in TABLES:
        landed = io.read_delta(spark, landing_path(out, table))
        classified = landed.transform(bronze.classify(table)).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(classified)
        io.write_delta(classified.transform(bronze.typed(table)), linkage_path(out, "bronze", table))
        quarantine_parts.append(classified.transform(bronze.quarantined(table, run_id)))
        reconciled[table] = state_counts(classified)
    quarantine = quarantine_parts[0]
    for part in quarantine_parts[1:]:
        quarantine = quarantine.unionByName(part)
    io.write_delta(quarantine, linkage_path(out, "quarantine"), partition_by=["source_table"])
    for df in cached:
        df.unpersist()
    return reconciled


def run(spark: SparkSession, config: Config, raw: str, out: str) -> int:
    import mlflow

    # Structural checks on every table first: a run that cannot finish writes nothing.
    layouts = {table: io.check_columns(spark, raw, table) for table in TABLES}
    out_path = Path(out)
    results = out_path / "results"
    generator_info = Path(raw) / "_truth" / "generator.json"
    with tracking.run(config, run_name="ld-spark run") as active:
        if generator_info.exists():
            info = json.loads(generator_info.read_text())
            mlflow.log_params({"synthetic.scale": info["scale"], "synthetic.seed": info["seed"]})
        started = time.time()
        counts = {}
        for table, (kind, groups) in layouts.items():
            path = landing_path(out_path, table)
            io.write_delta(io.read_raw(spark, table, kind, groups), path)
            counts[table] = io.read_delta(spark, path).count()
            mlflow.log_param(f"delta_version.landing.{table.replace('/', '.')}", io.delta_version(spark, path))
        mlflow.log_metric("stage_seconds.landing", time.time() - started)

        started = time.time()
        run_id = active.info.run_id
        reconciled = run_bronze(spark, out_path, run_id)
        mlflow.log_metric("stage_seconds.bronze", time.time() - started)
        for table, states in reconciled.items():
            for state, n in states.items():
                mlflow.log_metric(f"rows_{state}.{table.replace('/', '.')}", n)

        results.mkdir(parents=True, exist_ok=True)
        with (results / "reconciliation.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["source_table", "read", *STATES])
            for table, states in reconciled.items():
                writer.writerow([table, states["read"], *[states[s] for s in STATES]])
        mlflow.log_artifact(str(results / "reconciliation.csv"), artifact_path="results")

    loaded = sum(s[bronze.LOADED] for s in reconciled.values())
    quarantined = sum(s[bronze.QUARANTINED] for s in reconciled.values())
    print(f"read {sum(counts.values()):,d} rows from {len(counts)} tables: {loaded:,d} loaded into bronze Delta "
          f"tables, {quarantined:,d} quarantined with their reason, under {out_path / 'linkage'}")
    print(f"results: {results}")
    print(f"MLflow run {run_id} in {config.mlflow.tracking_uri} "
          f"(browse: .venv/bin/mlflow ui --backend-store-uri {config.mlflow.tracking_uri})")
    return 0
