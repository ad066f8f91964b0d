"""`ld-spark run` end to end on the session's synthetic extract."""
from __future__ import annotations

import csv

import pytest

from ld_spark import io, pipeline
from ld_spark.contract import TABLES
from ld_spark.errors import InputError


@pytest.fixture(scope="module")
def run_config(config, tmp_path_factory):
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{store}"})})


@pytest.fixture(scope="module")
def finished_run(spark, run_config, extract, tmp_path_factory):
    raw, counts = extract
    out = tmp_path_factory.mktemp("out")
    assert pipeline.run(spark, run_config, raw=str(raw), out=str(out)) == 0
    return out, counts


def test_every_table_lands_in_delta_with_every_row(spark, finished_run):
    out, counts = finished_run
    for table in TABLES:
        landed = io.read_delta(spark, pipeline.landing_path(out, table))
        assert landed.count() == counts[table], table
        assert landed.columns == TABLES[table] + [io.SOURCE_FILE, io.LINE, io.ROW_FAULT]


def _reconciliation(out):
    with (out / "results" / "reconciliation.csv").open() as handle:
        return {row["source_table"]: {k: int(v) for k, v in row.items() if k != "source_table"}
                for row in csv.DictReader(handle)}


def test_reconciliation_accounts_for_every_row_the_generator_wrote(finished_run):
    out, counts = finished_run
    rec = _reconciliation(out)
    assert {t: r["read"] for t, r in rec.items()} == counts
    for table, r in rec.items():
        assert r["loaded"] + r["quarantined"] + r["duplicate"] + r["superseded"] == r["read"], table
        assert r["duplicate"] > 0, table  # the generator resubmits rows in every table
    assert rec["hes_ae"]["quarantined"] > 0  # planted unparseable dates and codes
    assert rec["mhsds/mhs101_referral"]["superseded"] > 0
    assert rec["hmcts/cases"]["superseded"] == 0


def test_bronze_tables_are_typed_with_unique_keys_and_quarantine_says_where(spark, finished_run):
    from pyspark.sql import functions as F

    out, _ = finished_run
    hes = io.read_delta(spark, pipeline.linkage_path(out, "bronze", "hes_ae"))
    assert dict(hes.dtypes)["ARRIVALDATE"] == "date" and dict(hes.dtypes)["DOB"] == "date"
    assert hes.count() == hes.select("AEKEY").distinct().count()
    assert hes.filter(F.col("HOMEADD").isin("NF1 1NF", "ZZ99 3VZ")).count() == 0
    mpi = io.read_delta(spark, pipeline.linkage_path(out, "bronze", "mhsds/mhs001_mpi"))
    assert mpi.count() == mpi.select("OrgIDProv", "LocalPatientId").distinct().count()
    quarantine = io.read_delta(spark, pipeline.linkage_path(out, "quarantine"))
    assert quarantine.filter(F.col("line").isNull() | F.col("source_file").isNull() | F.col("rule").isNull()).count() == 0
    rules = {r["rule"] for r in quarantine.select("rule").distinct().collect()}
    assert {"unparseable_date", "code_outside_list"} <= rules


def test_mlflow_run_holds_the_reconciliation(finished_run, run_config):
    import mlflow

    out, counts = finished_run
    mlflow.set_tracking_uri(run_config.mlflow.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[run_config.mlflow.experiment])
    assert len(runs) >= 1  # newest first
    run = runs.iloc[0]
    assert run["metrics.rows_read.hes_ae"] == counts["hes_ae"]
    assert run["metrics.rows_quarantined.hes_ae"] == _reconciliation(out)["hes_ae"]["quarantined"]
    assert run["params.synthetic.seed"] == "7"
    assert run["params.spark.master"] == "local[2]"


def test_rerun_leaves_the_same_content(spark, run_config, finished_run, extract):
    raw, counts = extract
    out, _ = finished_run
    assert pipeline.run(spark, run_config, raw=str(raw), out=str(out)) == 0
    assert io.read_delta(spark, pipeline.landing_path(out, "hes_ae")).count() == counts["hes_ae"]


def test_structural_error_stops_before_anything_is_written(spark, run_config, tmp_path):
    (tmp_path / "raw" / "ld_referrals").mkdir(parents=True)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="table ld_referrals: directory .* holds no files"):
        pipeline.run(spark, run_config, raw=str(tmp_path / "raw"), out=str(out))
    assert not out.exists()
