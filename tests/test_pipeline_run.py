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
def finished_run(spark, run_config, small_extract, tmp_path_factory):
    raw, counts = small_extract
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
    assert run["params.synthetic.seed"] == "11"
    assert run["params.spark.master"] == "local[2]"


def test_linkage_meets_the_f1_targets_at_test_scale(finished_run):
    """Targets: F1 >= 0.98 for every source, >= 0.95 for NDTMS (here at scale 0.05)."""
    out, _ = finished_run
    with (out / "results" / "linkage_quality.csv").open() as handle:
        quality = {row["source_table"]: row for row in csv.DictReader(handle)}
    assert set(quality) == {"ld_referrals", "hes_ae", "mhsds.mhs001_mpi", "iapt.ids001_mpi", "ndtms.episodes",
                            "pnc.offences", "hmcts.cases"}
    for source, row in quality.items():
        target = 0.95 if source == "ndtms.episodes" else 0.98
        assert float(row["f1"]) >= target, (source, row)
        assert int(row["n_persons"]) < int(row["n_records"]) or source == "ld_referrals"


def test_every_identity_record_gets_one_pseudonymous_person_key(spark, finished_run, small_extract):
    from pyspark.sql import functions as F

    out, counts = finished_run
    linked = io.read_delta(spark, pipeline.linkage_path(out, "record_person"))
    assert linked.count() == linked.select("source_table", "record_key").distinct().count()
    bronze_hes = io.read_delta(spark, pipeline.linkage_path(out, "bronze", "hes_ae")).count()
    assert linked.filter(F.col("source_table") == "hes_ae").count() == bronze_hes
    keys = linked.select("person_key").distinct().dropna()
    assert keys.filter(~F.col("person_key").rlike("^[0-9a-f]{64}$")).count() == 0
    # Event tables are covered through their parents; a row whose parent was quarantined stays unlinked.
    for table in ("hmcts/hearings", "mhsds/mhs201_care_contact", "ndtms/modalities"):
        bronze_rows = io.read_delta(spark, pipeline.linkage_path(out, "bronze", table)).count()
        rows = linked.filter(F.col("source_table") == table.replace("/", "."))
        assert rows.count() == bronze_rows, table
        assert rows.filter(F.col("person_key").isNull()).count() < 0.01 * bronze_rows, table


def test_saved_model_links_a_hand_made_case_without_retraining(spark, finished_run, run_config, tmp_path):
    """Aliases, a swapped forename/surname, a missing NHS number, and a twin with the same DOB.

    The twin lives elsewhere: a twin at the same address is, to a Fellegi-Sunter model, only a
    forename disagreement against DOB and postcode agreement, and a record without an NHS number
    can then bridge the two (a known limit, noted in the README)."""
    from pyspark.sql import types as T

    from ld_spark import linkage

    out, _ = finished_run
    rows = [
        ("a_ld", "JOHN", "SMITH", "JS", "1980-05-06", "M", "LS6 2AB", "9434765919", None, None),
        ("a_alias", "JON", "SMITH", "JS", "1980-05-06", "M", "LS6 2AB", None, "2004/7273074A", None),
        ("a_swapped", "SMITH", "JOHN", "SJ", "1980-06-05", "M", "LS6 2AB", None, "2004/7273074A", None),
        ("twin", "JAMES", "SMITH", "JS", "1980-05-06", "M", "M14 5RT", "4010232137", None, None),
    ]
    schema = T.StructType([T.StructField(c, T.StringType()) for c in [linkage.UNIQUE_ID, *linkage.IDENTITY]])
    tuples = spark.createDataFrame(rows, schema)
    work = tmp_path / "splink"
    work.mkdir()
    pairs, _ = linkage.train_and_predict(spark, tuples, run_config.linkage, work,
                                         model_in=pipeline.linkage_path(out, "model") / "splink_model.json")
    edges = linkage.deterministic_edges(tuples).unionByName(pairs.select("id_l", "id_r"))
    people = {r[linkage.UNIQUE_ID]: r["component"]
              for r in linkage.connected_components(tuples.select(linkage.UNIQUE_ID), edges).collect()}
    assert people["a_ld"] == people["a_alias"] == people["a_swapped"]
    assert people["twin"] != people["a_ld"]


def test_rerun_leaves_the_same_content(spark, run_config, finished_run, small_extract):
    raw, counts = small_extract
    out, _ = finished_run
    assert pipeline.run(spark, run_config, raw=str(raw), out=str(out)) == 0
    assert io.read_delta(spark, pipeline.landing_path(out, "hes_ae")).count() == counts["hes_ae"]


def test_structural_error_stops_before_anything_is_written(spark, run_config, tmp_path):
    (tmp_path / "raw" / "ld_referrals").mkdir(parents=True)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="table ld_referrals: directory .* holds no files"):
        pipeline.run(spark, run_config, raw=str(tmp_path / "raw"), out=str(out))
    assert not out.exists()
