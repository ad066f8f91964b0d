"""No direct identifier of the input may leave the linkage layer.

The synthetic extract's own identifiers (every name, NHS number, PNC ID, date of birth and
postcode it holds, as recorded and as normalised: unique values per person) are searched for in
every analysis-layer Delta table, every file under results/, the MLflow run (params, metrics,
tags, artifacts) and everything the run printed, Spark's own log included (the run is a separate
process). The pseudonymisation key, given through the environment, is searched for too.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ld_spark import io, pipeline

TOKEN = re.compile(r"[A-Za-z0-9/]+(?:[-' ][A-Za-z0-9]+)*")


def identifiers(raw: Path) -> set[str]:
    values: set[str] = set()
    for table, columns in [("ld_referrals", ["forename", "surname", "date_of_birth", "nhs_number", "pnc_id", "postcode"]),
                           ("pnc/offences", ["forename", "surname", "date_of_birth", "pnc_id", "postcode", "cro_number"]),
                           ("hes_ae", ["NEWNHSNO", "DOB", "HOMEADD"])]:
        for f in (raw / table).glob("*.csv"):
            df = pd.read_csv(f, dtype=str, usecols=columns)
            for c in columns:
                values.update(v for v in df[c].dropna().unique() if len(v) >= 5)
    # Normalised forms as bronze holds them.
    values.update({v.upper() for v in values if v.isalpha()})
    values.update({re.sub(r"\s+", "", v).upper() for v in values if re.match(r"^[A-Za-z]{1,2}\d", v)})
    return values


def found_in_text(text: str, needles: set[str]) -> set[str]:
    hits = {n for n in needles if " " in n and n in text}
    tokens = set(TOKEN.findall(text)) | set(re.findall(r"\d{4}-\d{2}-\d{2}", text))
    return hits | (tokens & needles)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scanned_run(config, small_extract, tmp_path_factory):
    """`ld-spark run` as its own process, with everything it printed (the JVM's log included)."""
    raw, _ = small_extract
    out = tmp_path_factory.mktemp("scan_out")
    store = tmp_path_factory.mktemp("scan_mlflow") / "mlflow.db"
    key = "scan-test-key-" + "9" * 20
    env = {**os.environ, config.linkage.key_env: key, "MLFLOW_TRACKING_URI": f"sqlite:///{store}",
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "ld_spark.cli", "run", "--raw", str(raw), "--out", str(out),
                           "--conf", "test"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_config = config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{store}"})})
    return raw, out, run_config, done.stdout + done.stderr, key


def test_no_identifier_reaches_analysis_tables_results_mlflow_or_logs(spark, scanned_run, tmp_path):
    import mlflow

    raw, out, run_config, printed, key = scanned_run
    needles = identifiers(raw)
    assert len(needles) > 1000
    needles.add(key)
    print(f"\nidentifier scan: {len(needles)} values searched for")

    analysis_tables = [p for p in (out / "analysis").iterdir() if (p / "_delta_log").exists()]
    assert analysis_tables, "no analysis-layer tables to scan"
    for table in analysis_tables:
        df = io.read_delta(spark, table)
        text = "\n".join(",".join(str(v) for v in row) for row in df.collect())
        assert not found_in_text(text, needles), table

    for f in (out / "results").rglob("*"):
        if f.is_file():
            text = f.read_bytes().decode("utf-8", errors="ignore")
            assert not found_in_text(text, needles), f

    mlflow.set_tracking_uri(run_config.mlflow.tracking_uri)
    run = mlflow.search_runs(experiment_names=[run_config.mlflow.experiment], output_format="list")[0]
    data = run.data
    text = "\n".join([*map(str, data.params.items()), *map(str, data.metrics.items()), *map(str, data.tags.items())])
    assert not found_in_text(text, needles)
    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path)))
    files = [f for f in artifacts.rglob("*") if f.is_file()]
    assert any(f.name == "splink_model.json" for f in files)
    for f in files:
        assert not found_in_text(f.read_bytes().decode("utf-8", errors="ignore"), needles), f

    assert not found_in_text(printed, needles)


def test_analysis_person_table_holds_only_key_year_of_birth_and_sex(spark, scanned_run):
    _, out, _, _, _ = scanned_run
    persons = io.read_delta(spark, pipeline.analysis_path(out, "persons"))
    assert persons.columns == ["person_key", "year_of_birth", "sex"]
    linked = io.read_delta(spark, pipeline.linkage_path(out, "record_person"))
    assert persons.count() == linked.select("person_key").dropna().distinct().count()
    assert persons.count() == persons.select("person_key").distinct().count()
