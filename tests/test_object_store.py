"""RAW_DIR and OUT_DIR on an object store: a real S3 API server (moto's, on 127.0.0.1) and
Hadoop's s3a filesystem, as a cluster whose data lives in S3 runs the job.

The run on s3a:// is the tiny extract run in this process, against the same extract run on a
local folder: the analysis tables must be equal, results/ whole with its manifest, and MLflow's
artifacts in the same bucket.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality

from ld_spark import catalog, fs, io, lock, pipeline
from ld_spark.contract import TABLES
from ld_spark.errors import InputError, OutputBusy

BUCKET = "ld-spark-test"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(spark, tmp_path_factory):
    """moto's S3 server on 127.0.0.1 with one bucket, the session's s3a settings pointed at it,
    and a boto3 client; the keys are in the environment, as a deployment gives them."""
    import boto3

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    saved = {k: os.environ.get(k) for k in [*KEYS, "MLFLOW_S3_ENDPOINT_URL"]}
    os.environ.update({**KEYS, "MLFLOW_S3_ENDPOINT_URL": endpoint})
    hadoop = spark._jsc.hadoopConfiguration()
    settings = {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.endpoint.region": "us-east-1",
        # The JVM started before these keys entered the environment: Hadoop gets them here.
        "fs.s3a.access.key": KEYS["AWS_ACCESS_KEY_ID"],
        "fs.s3a.secret.key": KEYS["AWS_SECRET_ACCESS_KEY"],
    }
    for key, value in settings.items():
        hadoop.set(key, value)
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for _ in range(100):
            with contextlib.suppress(Exception):
                client.create_bucket(Bucket=BUCKET)
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"moto's S3 server did not start: {log.read_text()}")
        yield client
    finally:
        for key in settings:
            hadoop.unset(key)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.terminate()
        server.wait(timeout=30)


def upload(client, folder: Path, prefix: str) -> str:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder)}")
    return f"s3a://{BUCKET}/{prefix}"


def test_a_run_with_raw_and_out_on_s3_equals_the_same_run_on_local_folders(spark, run_config, tiny, s3, tmp_path):
    # The sensitivity analyses rebuild the same tables again: left out of both runs for time. An
    # MLflow store of their own: the session's store is for the tests that compare its runs.
    run_config = run_config.model_copy(
        update={
            "sensitivity": run_config.sensitivity.model_copy(update={"enabled": False}),
            "mlflow": run_config.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}),
        }
    )
    local_out = tmp_path / "out"
    started = time.time()
    assert pipeline.run(spark, run_config, raw=str(tiny), out=str(local_out)) == 0
    print(f"local run {time.time() - started:.1f} s")

    raw = upload(s3, tiny, "raw")
    out = f"s3a://{BUCKET}/out"
    on_s3 = run_config.model_copy(
        update={
            "mlflow": run_config.mlflow.model_copy(
                update={"experiment": "ld-spark-on-s3", "artifact_location": f"s3://{BUCKET}/mlflow"}
            )
        }
    )
    started = time.time()
    assert pipeline.run(spark, on_s3, raw=raw, out=out) == 0
    print(f"s3 run {time.time() - started:.1f} s")

    # Every analysis table, row for row (the person keys too: one key, one extract).
    written = {root: set(catalog.versions(root)) for root in (out, local_out)}
    assert written[out] == written[local_out]
    analysis = [t for t in catalog.tables() if f"{t.layer}/{t.name}" in written[out] and t.layer == catalog.ANALYSIS]
    assert len(analysis) == 10
    for table in analysis:
        ours, theirs = (io.read_delta(spark, catalog.path(root, table)) for root in (out, local_out))
        assert_df_equality(ours, theirs, ignore_row_order=True, ignore_nullable=True)
    # Rows landed from the object store keep their file (its URL) and line.
    landing = io.read_delta(spark, catalog.path(out, catalog.LANDING))
    files = {r[io.SOURCE_FILE] for r in landing.select(io.SOURCE_FILE).distinct().collect()}
    assert files == {f"{raw}/{table}/part-0.csv" for table in TABLES}
    assert landing.filter(landing[io.LINE] == 2).count() == len(TABLES)

    # results/ on S3: the released files and the manifest that lists them, identical to local.
    listed = {
        o["Key"].removeprefix("out/results/")
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/results/")["Contents"]
    }
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="out/results/manifest.json")["Body"].read())
    assert listed == {*manifest["files"], "manifest.json"}
    assert (
        manifest["delta_versions"]
        == json.loads((local_out / "results" / "manifest.json").read_text())["delta_versions"]
    )
    for name in ("estimates.csv", "figure1.csv", "sdc_report.csv", "reconciliation.csv"):
        assert (
            s3.get_object(Bucket=BUCKET, Key=f"out/results/{name}")["Body"].read()
            == (local_out / "results" / name).read_bytes()
        )
    # Files beside the tables: the model, the exact reconciliation, no Splink work left behind.
    assert fs.exists(catalog.file(out, catalog.MODEL_FILE))
    assert fs.read_bytes(catalog.file(out, catalog.RECONCILIATION_FILE)) == fs.read_bytes(
        catalog.file(local_out, catalog.RECONCILIATION_FILE)
    )
    assert not fs.exists(catalog.file(out, catalog.SPLINK_WORK))
    # No lock left behind once the run ended.
    assert not fs.exists(fs.join(out, lock.LOCK_FILE))

    # MLflow's artifacts went to the same bucket (its own S3 artifact repository).
    artifacts = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")["Contents"]}
    assert any(k.endswith("/artifacts/results/estimates.csv") for k in artifacts)
    assert any(k.endswith("/artifacts/linkage/splink_model.json") for k in artifacts)


def test_a_damaged_file_on_s3_is_named_by_its_url(spark, tiny, s3, tmp_path):
    raw = upload(s3, tiny, "damaged")
    s3.put_object(Bucket=BUCKET, Key="damaged/hes_ae/part-1.csv", Body=b"not,the,header\n1,2,3\n")
    s3.put_object(Bucket=BUCKET, Key="damaged/iapt/ids001_mpi/notes.txt", Body=b"sent by the data team")
    # One table as parquet (a database export): its rows are counted from the footers on S3 too.
    import pandas as pd

    hearings = pd.read_csv(tiny / "hmcts/hearings/part-0.csv", dtype=str)
    parquet = tmp_path / "part-0.parquet"
    hearings.to_parquet(parquet, index=False)
    s3.delete_object(Bucket=BUCKET, Key="damaged/hmcts/hearings/part-0.csv")
    s3.upload_file(str(parquet), BUCKET, "damaged/hmcts/hearings/part-0.parquet")
    layouts, faults = io.check_tables(spark, raw)
    counted = io.raw_record_counts(spark, {t: layouts[t] for t in ("hmcts/hearings", "hmcts/cases")})
    assert layouts["hmcts/hearings"][0] == "parquet" and counted == {"hmcts/hearings": len(hearings), "hmcts/cases": 60}
    messages = [str(f) for f in faults]
    assert any(f"file {raw}/hes_ae/part-1.csv lacks column" in m for m in messages), messages
    assert any(f"file {raw}/iapt/ids001_mpi/notes.txt is not CSV or parquet" in m for m in messages), messages
    with pytest.raises(InputError, match=rf"table ld_referrals: directory {raw}/nothing/ld_referrals is missing"):
        io.raw_files(f"s3a://{BUCKET}/damaged/nothing", "ld_referrals")


def test_the_s3_lock_admits_one_run_and_takes_over_only_an_expired_lease(spark, s3):
    url = f"s3a://{BUCKET}/locked/{lock.LOCK_FILE}"
    first = lock.S3Lease(url, lease_seconds=60, client=s3)
    first.acquire()
    with pytest.raises(OutputBusy, match=r"output s3a://.*/locked is in use by run pid \d+ on .* started"):
        lock.S3Lease(url, lease_seconds=60, client=s3).acquire()

    # A run killed without releasing: its lease runs out, and then the next run takes over.
    stale = lock.S3Lease(url, lease_seconds=0.5, client=s3)
    first.release()
    stale.acquire()
    time.sleep(1.0)
    taker = lock.S3Lease(url, lease_seconds=60, client=s3)
    taker.acquire()
    assert not stale.renew()  # the killed run, were it only paused, learns it lost the lock
    assert "taken over" in stale.lost
    assert taker.renew()
    taker.release()
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="locked/")

    # The context manager: held for the block, renewed in the background, gone afterwards.
    key = f"locked/{lock.LOCK_FILE}"
    with lock.exclusive(f"s3a://{BUCKET}/locked", lease_seconds=0.6):
        first_etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
        time.sleep(0.5)  # past two renewals (every 0.2 s)
        held = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        assert s3.head_object(Bucket=BUCKET, Key=key)["ETag"] != first_etag and held["expires"] > time.time()
        with pytest.raises(OutputBusy):
            lock.exclusive(f"s3a://{BUCKET}/locked").__enter__()
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="locked/")

    # A run whose lock another run took is stopped at once, not at its end.
    started = time.time()
    with pytest.raises(OutputBusy, match="taken over or removed by another run"):
        with lock.exclusive(f"s3a://{BUCKET}/locked", lease_seconds=0.6):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"holder": "someone else"}')
            time.sleep(30)  # the heartbeat interrupts this
    assert time.time() - started < 5
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == {"holder": "someone else"}
