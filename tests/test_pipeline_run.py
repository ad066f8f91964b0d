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
        assert landed.columns == TABLES[table] + [io.SOURCE_FILE]


def test_row_counts_file_and_mlflow_run_hold_the_same_numbers(finished_run, run_config):
    import mlflow

    out, counts = finished_run
    with (out / "results" / "row_counts.csv").open() as handle:
        written = {row["source_table"]: int(row["rows_read"]) for row in csv.DictReader(handle)}
    assert written == counts
    mlflow.set_tracking_uri(run_config.mlflow.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[run_config.mlflow.experiment])
    assert len(runs) >= 1  # newest first
    run = runs.iloc[0]
    assert run["metrics.rows_read.hes_ae"] == counts["hes_ae"]
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
