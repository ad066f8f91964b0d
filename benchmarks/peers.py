"""Peers measured on the same inputs as a finished `ld-spark run` (called by benchmarks/run.py).

    .venv/bin/python benchmarks/peers.py series  --out OUT --work DIR
    .venv/bin/python benchmarks/peers.py linkage --raw RAW --out OUT --work DIR

series:  the event-series aggregation (dated events + index dates -> the zero-filled person x
         cohort x month panel of event counts, months -24..+12) three ways, each reading the same
         parquet inputs and writing the panel to parquet: Spark (ld_spark.series, as the job runs
         it), DuckDB SQL, pandas. The three panels are checked equal row for row.
linkage: Splink 5 on its DuckDB backend with the job's own settings, training steps and match
         threshold, then Splink's clustering, on the same identity tuples the job linked; scored
         with the job's own pairwise precision/recall/F1 against _truth, next to the job's links.

Prints one JSON line: seconds per engine, rows, and the quality or equality checks.
Inputs are prepared with Spark before any clock starts; each clock covers read, compute, write.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ld_spark import catalog, events, io, link, series, session  # noqa: E402
from ld_spark import config as config_module  # noqa: E402

FIRST, LAST = -24, 12
# Each engine runs the series aggregation this many times; the best time is compared (the first,
# with Spark's code generation and the JVM's warm-up in it, is reported too).
REPEATS = 3
OUTCOMES = events.PANEL_OUTCOMES


def spark_session():
    return session.build(config_module.load("local"))


# ---------------------------------------------------------------------------------- series
def prepare_series(spark, out: Path, work: Path) -> tuple[Path, Path, int]:
    """The stage's inputs as the job builds them: dated cohort events and the cohort index."""
    record_person = io.read_delta(spark, catalog.path(out, catalog.RECORD_PERSON))
    index = io.read_delta(spark, catalog.path(out, catalog.COHORT_INDEX))

    def bronze_table(table: str):
        return io.read_delta(spark, catalog.path(out, catalog.bronze(table)))

    dated = events.cohort_events(bronze_table, record_person, index)
    events_path, index_path = work / "events", work / "index"
    dated.write.mode("overwrite").parquet(str(events_path))
    index.select("person_key", "cohort", "index_date", "in_outcomes").write.mode("overwrite").parquet(str(index_path))
    return events_path, index_path, spark.read.parquet(str(events_path)).count()


def spark_panel(spark, events_path: Path, index_path: Path, target: Path) -> None:
    index = spark.read.parquet(str(index_path))
    dated = spark.read.parquet(str(events_path))
    series.person_month_panel(index, dated, OUTCOMES, FIRST, LAST).write.mode("overwrite").parquet(str(target))


def duckdb_panel(events_path: Path, index_path: Path, target: Path) -> None:
    counts = ",\n".join(f"count(*) FILTER (WHERE outcome = '{o}') AS {o}" for o in OUTCOMES)
    filled = ", ".join(f"coalesce(c.{o}, 0)::BIGINT AS {o}" for o in OUTCOMES)
    con = duckdb.connect()
    con.execute(f"""
        COPY (
          WITH idx AS (SELECT * FROM read_parquet('{index_path}/*.parquet')),
          monthly AS (
            SELECT e.person_key, i.cohort, e.outcome,
                   (year(e.event_date) * 12 + month(e.event_date))
                   - (year(i.index_date) * 12 + month(i.index_date)) AS rel_month
            FROM read_parquet('{events_path}/*.parquet') e JOIN idx i USING (person_key)),
          counted AS (
            SELECT person_key, cohort, rel_month, {counts}
            FROM monthly WHERE rel_month BETWEEN {FIRST} AND {LAST}
            GROUP BY person_key, cohort, rel_month)
          SELECT i.person_key, i.cohort, i.in_outcomes, m.rel_month::INTEGER AS rel_month, {filled}
          FROM idx i CROSS JOIN range({FIRST}, {LAST + 1}) m(rel_month)
          LEFT JOIN counted c ON c.person_key = i.person_key AND c.cohort = i.cohort AND c.rel_month = m.rel_month
        ) TO '{target}' (FORMAT parquet)""")
    con.close()


def pandas_panel(events_path: Path, index_path: Path, target: Path) -> None:
    idx = pd.read_parquet(index_path)
    dated = pd.read_parquet(events_path)
    joined = dated.merge(idx[["person_key", "cohort", "index_date"]], on="person_key")
    event_month = pd.to_datetime(joined["event_date"])
    index_month = pd.to_datetime(joined["index_date"])
    joined["rel_month"] = (
        event_month.dt.year * 12 + event_month.dt.month - index_month.dt.year * 12 - index_month.dt.month
    )
    joined = joined[joined["rel_month"].between(FIRST, LAST)]
    counted = (
        joined.groupby(["person_key", "cohort", "rel_month", "outcome"])
        .size()
        .unstack("outcome", fill_value=0)
        .reindex(columns=OUTCOMES, fill_value=0)
        .reset_index()
    )
    months = np.arange(FIRST, LAST + 1, dtype="int32")
    grid = idx[["person_key", "cohort", "in_outcomes"]].loc[idx.index.repeat(len(months))].reset_index(drop=True)
    grid["rel_month"] = np.tile(months, len(idx))
    panel = grid.merge(counted, on=["person_key", "cohort", "rel_month"], how="left")
    panel[OUTCOMES] = panel[OUTCOMES].fillna(0).astype("int64")
    panel.to_parquet(target, index=False)


def differing_rows(a: Path, b: Path) -> int:
    """Rows in either panel and not the other (0 = identical multisets of rows)."""
    cols = ", ".join(["person_key", "cohort", "in_outcomes", "rel_month::INTEGER", *[f"{o}::BIGINT" for o in OUTCOMES]])

    def rel(p: Path) -> str:
        return f"read_parquet('{p}/*.parquet')" if p.is_dir() else f"read_parquet('{p}')"

    one, two = f"SELECT {cols} FROM {rel(a)}", f"SELECT {cols} FROM {rel(b)}"
    con = duckdb.connect()
    n = con.execute(
        f"SELECT (SELECT count(*) FROM ({one} EXCEPT ALL {two})) + (SELECT count(*) FROM ({two} EXCEPT ALL {one}))"
    ).fetchone()[0]
    con.close()
    return int(n)


def run_series(args) -> dict:
    spark = spark_session()
    work = Path(args.work)
    events_path, index_path, n_events = prepare_series(spark, Path(args.out), work)
    seconds = {}
    for name, fn in [
        ("spark", lambda t: spark_panel(spark, events_path, index_path, t)),
        ("duckdb", lambda t: duckdb_panel(events_path, index_path, t)),
        ("pandas", lambda t: pandas_panel(events_path, index_path, t)),
    ]:
        target = work / f"panel_{name}"
        timings = []
        for _ in range(REPEATS):
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
            started = time.perf_counter()
            fn(target)
            timings.append(time.perf_counter() - started)
        seconds[name], seconds[f"{name}_first"] = min(timings), timings[0]
    rows = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{work}/panel_duckdb')").fetchone()[0]
    result = {
        "events": n_events,
        "panel_rows": int(rows),
        **{f"{k}_seconds": round(v, 2) for k, v in seconds.items()},
        "spark_vs_duckdb": round(seconds["spark"] / seconds["duckdb"], 2),
        "spark_vs_pandas": round(seconds["spark"] / seconds["pandas"], 2),
        "rows_differing_duckdb": differing_rows(work / "panel_spark", work / "panel_duckdb"),
        "rows_differing_pandas": differing_rows(work / "panel_spark", work / "panel_pandas"),
    }
    spark.stop()
    return result


# --------------------------------------------------------------------------------- linkage
def prepare_linkage(spark, out: Path, work: Path) -> tuple[Path, Path]:
    """The identity records and distinct tuples exactly as the job's linkage stage builds them."""
    bronze = {table: catalog.read(spark, out, catalog.bronze(table)) for table, _, _ in link.identity.SOURCES.values()}
    records = link.identity.records(bronze)
    records_path, tuples_path = work / "records", work / "tuples"
    records.select("source_table", "record_key", link.identity.UNIQUE_ID).write.mode("overwrite").parquet(
        str(records_path)
    )
    link.identity.identity_tuples(records).write.mode("overwrite").parquet(str(tuples_path))
    return records_path, tuples_path


def splink_duckdb(tuples_path: Path, records_path: Path, conf, target: Path) -> int:
    """Train, predict and cluster with Splink on DuckDB; writes source_table, record_key, person_key."""
    from splink import DuckDBAPI, Linker

    con = duckdb.connect()
    con.execute(f"CREATE TABLE identity_tuples AS SELECT * FROM read_parquet('{tuples_path}/*.parquet')")
    linker = Linker(DuckDBAPI(con).register("identity_tuples"), link.model.splink_settings())
    link.model.train(linker, conf)
    predictions = linker.inference.predict(threshold_match_probability=conf.match_threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=conf.match_threshold
    )
    con.execute(f"""
        COPY (SELECT r.source_table, r.record_key, c.cluster_id AS person_key
              FROM read_parquet('{records_path}/*.parquet') r
              JOIN {clusters.physical_name} c ON c.{link.identity.UNIQUE_ID} = r.{link.identity.UNIQUE_ID})
        TO '{target}' (FORMAT parquet)""")
    pairs = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchone()[0]
    con.close()
    return int(pairs)


def run_linkage(args) -> dict:
    from pyspark.sql import functions as F

    spark = spark_session()
    out, work = Path(args.out), Path(args.work)
    conf = config_module.load("local").linkage
    records_path, tuples_path = prepare_linkage(spark, out, work)
    n_tuples = spark.read.parquet(str(tuples_path)).count()
    target = work / "splink_duckdb.parquet"
    started = time.perf_counter()
    pairs = splink_duckdb(tuples_path, records_path, conf, target)
    seconds = time.perf_counter() - started

    truth = spark.read.csv(str(Path(args.raw) / "_truth" / "record_person.csv"), header=True)
    ours = io.read_delta(spark, catalog.path(out, catalog.RECORD_PERSON_IDENTITY))
    theirs = spark.read.parquet(str(target)).withColumn("person_key", F.col("person_key").cast("string"))
    quality = {}
    for name, linked in [("spark_job", ours), ("splink_duckdb", theirs)]:
        rows = link.quality.pairwise_rows(linked, truth, on="duckdb")
        quality[name] = {r["source_table"]: round(r["f1"], 4) for r in rows if r["f1"] is not None}
    spark.stop()
    min_f1 = {k: min(v.values()) for k, v in quality.items()}
    mean_f1 = {k: round(sum(v.values()) / len(v), 4) for k, v in quality.items()}
    return {
        "tuples": n_tuples,
        "splink_duckdb_seconds": round(seconds, 2),
        "splink_duckdb_pairs": pairs,
        "f1_min_spark_job": min_f1["spark_job"],
        "f1_min_splink_duckdb": min_f1["splink_duckdb"],
        "f1_mean_spark_job": mean_f1["spark_job"],
        "f1_mean_splink_duckdb": mean_f1["splink_duckdb"],
        "f1_by_source": quality,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=["series", "linkage"])
    parser.add_argument("--out", required=True, help="the finished run's output directory")
    parser.add_argument("--raw", help="the raw extract (its _truth scores linkage)")
    parser.add_argument("--work", required=True, help="scratch directory (emptied first)")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    Path(args.work).mkdir(parents=True)
    result = run_series(args) if args.peer == "series" else run_linkage(args)
    print("PEER " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
