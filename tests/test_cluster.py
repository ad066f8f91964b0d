"""spark-submit on a real Spark standalone cluster (tests/cluster.py): a master and two workers
on 127.0.0.1, started from the pip wheel.

The whole pipeline runs on the session's small extract, linking with the local run's saved
Splink model (predict only: training is the same code on either master; on the cluster it
scores on Spark), and must give the local-mode results. The run is conftest's `cluster_run`:
started before the other tests, checked here, last.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest
from cluster import REPO, spark_home, submit


def test_executors_import_the_code_shipped_with_py_files(cluster, tmp_path):
    url, _, _ = cluster
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "def where(_):\n"
        "    import ld_spark\n"
        "    yield ld_spark.__file__\n"
        "print('EXECUTOR_IMPORTS', sorted(set(spark.sparkContext.parallelize(range(4), 4).mapPartitions(where).collect())))\n"
    )
    done = submit(url, str(probe), work=tmp_path, env={**os.environ, "SPARK_HOME": str(spark_home())})
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("EXECUTOR_IMPORTS"))
    assert "ld_spark.zip" in line and str(REPO / "ld_spark") not in line, line


def test_spark_submit_on_the_cluster_gives_the_local_mode_results(
    spark, cluster, cluster_run, finished_run, finished_contents
):
    from conftest import table_contents

    _, _, work = cluster
    local_out, _ = finished_run
    assert cluster_run.wait() == 0, cluster_run.log.read_text()[-6000:]
    # It ran on the cluster: the master registered the job's application and both workers
    # launched executors for it.
    app = re.search(r"Registered app ld-spark with ID (app-\S+)", (work / "master.log").read_text())
    assert app, (work / "master.log").read_text()[-3000:]
    assert (work / "work1" / app.group(1)).is_dir() and (work / "work2" / app.group(1)).is_dir()

    def estimates(root: Path) -> dict[str, dict]:
        with (root / "results" / "estimates.csv").open() as handle:
            return {r["estimand"]: r for r in csv.DictReader(handle)}

    local, remote = estimates(local_out), estimates(cluster_run.out)
    assert list(local) == list(remote)
    for name, row in local.items():
        for column in ("estimate", "ci_low", "ci_high", "p_value"):
            a, b = row[column], remote[name][column]
            assert (a == b == "") or float(a) == pytest.approx(float(b), rel=1e-9, abs=1e-12), (name, column, a, b)
        assert row["n"] == remote[name]["n"]
    local_tables = {k: v for k, v in finished_contents.items() if k.startswith("analysis")}
    remote_tables = table_contents(spark, cluster_run.out, layer="analysis")
    assert local_tables.keys() == remote_tables.keys() and len(local_tables) >= 8
    differ = [k for k in local_tables if local_tables[k] != remote_tables[k] and k != "analysis/estimates"]
    assert not differ, differ
