"""`ld-spark run`: every stage that exists, raw extracts to results, tracked in MLflow."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from pyspark.sql import SparkSession

from ld_spark import io, tracking
from ld_spark.config import Config
from ld_spark.contract import TABLES


def landing_path(out: str | Path, table: str) -> Path:
    """Landing copies hold identifiers, so they live in the linkage layer."""
    return Path(out) / "linkage" / "landing" / table.replace("/", "__")


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
            mlflow.log_metric(f"rows_read.{table.replace('/', '.')}", counts[table])
            mlflow.log_param(f"delta_version.landing.{table.replace('/', '.')}", io.delta_version(spark, path))
        mlflow.log_metric("stage_seconds.landing", time.time() - started)

        results.mkdir(parents=True, exist_ok=True)
        with (results / "row_counts.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["source_table", "rows_read"])
            writer.writerows(sorted(counts.items()))
        mlflow.log_artifact(str(results / "row_counts.csv"), artifact_path="results")
        run_id = active.info.run_id

    print(f"landed {sum(counts.values()):,d} rows from {len(counts)} tables into Delta under {out_path / 'linkage'}")
    print(f"results: {results}")
    print(f"MLflow run {run_id} in {config.mlflow.tracking_uri} "
          f"(browse: .venv/bin/mlflow ui --backend-store-uri {config.mlflow.tracking_uri})")
    return 0
