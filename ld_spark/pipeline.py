"""`ld-spark run`: every stage that exists, raw extracts to results, tracked in MLflow."""
from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

from pyspark.sql import SparkSession

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark import bronze, io, linkage, report, tracking
from ld_spark.config import Config
from ld_spark.contract import TABLES

STATES = (bronze.LOADED, bronze.QUARANTINED, bronze.DUPLICATE, bronze.SUPERSEDED)


def landing_path(out: str | Path, table: str) -> Path:
    """Landing copies hold identifiers, so they live in the linkage layer."""
    return linkage_path(out, "landing", table)


def linkage_path(out: str | Path, *parts: str) -> Path:
    return Path(out).joinpath("linkage", *[p.replace("/", "__") for p in parts])


def analysis_path(out: str | Path, table: str) -> Path:
    """The analysis layer: person_key, year of birth, sex and events; no direct identifier."""
    return Path(out) / "analysis" / table


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


def run_linkage(spark: SparkSession, config: Config, raw: Path, out: Path) -> tuple[DataFrame | None, str]:
    """Bronze identity tables -> linkage/record_person (source_table, record_key, person_key).

    Returns the linkage quality (None without _truth) and the Splink model JSON.
    """
    key = linkage.load_key(config.linkage)
    records = None
    for source, (table, _, _) in linkage.SOURCES.items():
        part = io.read_delta(spark, linkage_path(out, "bronze", table)).transform(linkage.identity_records(source))
        records = part if records is None else records.unionByName(part)
    records = records.transform(linkage.with_tuple_id).persist(StorageLevel.MEMORY_AND_DISK)
    tuples = linkage.identity_tuples(records).persist(StorageLevel.MEMORY_AND_DISK)
    work = linkage_path(out, "_splink_work")
    work.mkdir(parents=True, exist_ok=True)
    model_in = Path(config.linkage.model_in) if config.linkage.model_in else None
    pairs, model = linkage.train_and_predict(spark, tuples, config.linkage, work, model_in=model_in)
    edges = linkage.deterministic_edges(tuples).unionByName(pairs.select("id_l", "id_r"))
    components = linkage.connected_components(tuples.select(linkage.UNIQUE_ID), edges)
    people = components.transform(linkage.with_person_key(key))
    record_person = (records.join(people, on=linkage.UNIQUE_ID, how="inner")
                     .select("source_table", "record_key", "person_key"))
    io.write_delta(record_person, linkage_path(out, "record_person_identity"))
    linked = io.read_delta(spark, linkage_path(out, "record_person_identity"))
    # Event tables reach their person through their parent record (parents listed first).
    everything = linked
    for table in linkage.EVENT_PARENTS:
        events = io.read_delta(spark, linkage_path(out, "bronze", table))
        everything = everything.unionByName(events.transform(linkage.event_record_person(table, everything)))
    io.write_delta(everything, linkage_path(out, "record_person"))
    io.write_delta(linkage.person_attributes(records, linked), analysis_path(out, "persons"))
    records.unpersist()
    tuples.unpersist()
    shutil.rmtree(work, ignore_errors=True)
    (linkage_path(out, "model")).mkdir(parents=True, exist_ok=True)
    (linkage_path(out, "model") / "splink_model.json").write_text(model)

    truth_file = raw / "_truth" / "record_person.csv"
    if not truth_file.exists():
        return None, model
    truth = spark.read.csv(str(truth_file), header=True)
    return linkage.pairwise_quality(linked, truth), model


def write_linkage_quality(spark: SparkSession, out: Path, quality: DataFrame | None, path: Path) -> None:
    """results/linkage_quality.csv (contract section 6); precision/recall/F1 blank without truth."""
    if quality is not None:
        rows = {r["source_table"]: r.asDict() for r in quality.collect()}
    else:
        linked = io.read_delta(spark, linkage_path(out, "record_person"))
        rows = {r["source_table"]: {**r.asDict(), "precision": None, "recall": None, "f1": None}
                for r in linked.groupBy("source_table").agg(F.count("*").alias("n_records"),
                                                            F.countDistinct("person_key").alias("n_persons")).collect()}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source_table", "n_records", "n_persons", "precision", "recall", "f1"])
        for source in linkage.SOURCES:
            r = rows.get(source, {"n_records": 0, "n_persons": 0, "precision": None, "recall": None, "f1": None})
            writer.writerow([source, r["n_records"], r["n_persons"],
                             *["" if r[m] is None else f"{r[m]:.4f}" for m in ("precision", "recall", "f1")]])


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

        started = time.time()
        quality, model = run_linkage(spark, config, Path(raw), out_path)
        mlflow.log_metric("stage_seconds.linkage", time.time() - started)
        mlflow.log_text(model, "linkage/splink_model.json")
        results.mkdir(parents=True, exist_ok=True)
        mlflow.log_artifact(str(report.match_weights_chart(model, results / "match_weights.png")), artifact_path="linkage")

        results.mkdir(parents=True, exist_ok=True)
        write_linkage_quality(spark, out_path, quality, results / "linkage_quality.csv")
        mlflow.log_artifact(str(results / "linkage_quality.csv"), artifact_path="results")
        with (results / "linkage_quality.csv").open() as handle:
            for row in csv.DictReader(handle):
                for metric in ("n_records", "n_persons", "precision", "recall", "f1"):
                    if row[metric]:
                        mlflow.log_metric(f"linkage.{metric}.{row['source_table']}", float(row[metric]))

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
