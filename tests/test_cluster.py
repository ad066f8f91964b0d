"""spark-submit on a real Spark standalone cluster: a master and two workers on 127.0.0.1.

The cluster is started from SPARK_HOME's `bin/spark-class` (session.spark_home: the pip wheel's
unless SPARK_HOME names another Spark), as on a machine without a Spark install. The job reaches it the way it would reach any cluster: `spark-submit --master spark://...`
with the Delta and Splink jars in `--jars` and the project's code in `--py-files` (a zip of
`ld_spark/`, which the executors import; a probe job checks they do). The whole pipeline runs
on the session's small extract, linking with the local run's saved Splink model (predict only:
training is the same code on either master; the sensitivity suite left out), and must give the
local-mode results: estimates, subgroups and every main analysis table. That run starts in the
background after the probe and is checked at the end of the session (the `last` marker), so the
rest of the suite runs beside it. Every process these tests start is stopped by its pid.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ld_spark import session

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listening on {port}: {log.read_text()[-3000:]}")


def wait_for_log(text: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text():
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """spark://127.0.0.1:PORT with two one-core workers; yields (master URL, [pids])."""
    work = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        "SPARK_HOME": str(session.spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work),
        "SPARK_WORKER_DIR": str(work / "work"),
    }
    spark_class = str(session.spark_home() / "bin" / "spark-class")
    port = free_port()
    processes = []

    def start(name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        log = work / f"{name}.log"
        proc = subprocess.Popen(
            [spark_class, *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        processes.append(proc)
        return proc, log

    try:
        master, master_log = start(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(free_port()),
        )
        wait_for_port(port, master, master_log)
        url = f"spark://127.0.0.1:{port}"
        for i in (1, 2):
            worker, log = start(
                f"worker{i}",
                "org.apache.spark.deploy.worker.Worker",
                url,
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "3g",
                "--webui-port",
                str(free_port()),
                "--work-dir",
                str(work / f"work{i}"),
            )
            wait_for_log("Successfully registered with master", worker, log)
        yield url, [p.pid for p in processes], work
    finally:
        for proc in reversed(processes):  # workers first; each takes its executors with it
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def submit_command(url: str, script: str, *args: str, work: Path) -> list[str]:
    """spark-submit of `script` to the cluster, with the jars and the project's code as a zip."""
    jars = subprocess.run(
        [sys.executable, "-m", "ld_spark.setup_jars", "--list"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    code = shutil.make_archive(str(work / "ld_spark"), "zip", root_dir=REPO, base_dir="ld_spark")
    command = [
        str(session.spark_home() / "bin" / "spark-submit"),
        "--master",
        url,
        "--deploy-mode",
        "client",
        "--jars",
        jars,
        "--py-files",
        code,
        "--driver-memory",
        "3g",
        "--executor-memory",
        "2g",
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        "spark.driver.host=127.0.0.1",
        script,
        *args,
    ]
    return command


def submit(url: str, script: str, *args: str, work: Path, env: dict) -> subprocess.CompletedProcess:
    command = submit_command(url, script, *args, work=work)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


class Submitted:
    """A spark-submit running in the background: its output goes to files, `wait` collects it."""

    def __init__(self, command: list[str], env: dict, work: Path):
        self.stdout, self.stderr = work / "job.out", work / "job.err"
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=self.stdout.open("w"),
            stderr=self.stderr.open("w"),
            start_new_session=True,
        )

    def wait(self, timeout: int = 1800) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        return code, self.stdout.read_text(), self.stderr.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="session")
def probe(cluster, tmp_path_factory) -> subprocess.CompletedProcess:
    """A job that asks every executor where it imports ld_spark from."""
    url, _, _ = cluster
    work = tmp_path_factory.mktemp("probe")
    script = work / "probe.py"
    script.write_text(
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "def where(_):\n"
        "    import ld_spark\n"
        "    yield ld_spark.__file__\n"
        "print('EXECUTOR_IMPORTS', sorted(set(spark.sparkContext.parallelize(range(4), 4).mapPartitions(where).collect())))\n"
    )
    return submit(url, str(script), work=work, env={**os.environ, "SPARK_HOME": str(session.spark_home())})


@pytest.fixture(scope="session")
def cluster_run(cluster, probe, finished_run, small_extract, tmp_path_factory):
    """The finished local run's extract, run by spark-submit on the cluster with the local run's
    saved model (predict only, as a monthly rerun would: `linkage.model_in`): (out dir, job).

    Started in the background once the probe has had the cluster (an application takes every
    free core), and checked by the test marked `last`: the rest of the suite runs meanwhile, on
    a machine the test run leaves mostly idle."""
    from ld_spark import catalog

    url, _, _ = cluster
    raw, _ = small_extract
    local_out, _ = finished_run
    work = tmp_path_factory.mktemp("cluster_run")
    out = work / "out"
    overlay = work / "saved_model.yaml"
    # The sensitivity suite is left out: its variants are the same stages on other inputs (1.5x
    # the run again), and the local run's suite is checked by test_pipeline_run.
    overlay.write_text(
        f"linkage:\n  model_in: {catalog.file(local_out, catalog.MODEL_FILE)}\nsensitivity:\n  enabled: false\n"
    )
    env = {
        **os.environ,
        "SPARK_HOME": str(session.spark_home()),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    arguments = ["--raw", str(raw), "--out", str(out), "--conf", "test", "--conf", str(overlay)]
    job = Submitted(submit_command(url, "jobs/run.py", *arguments, work=work), env, work)
    yield out, job
    job.stop()


def test_executors_import_the_code_shipped_with_py_files(probe, cluster_run):
    done = probe
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("EXECUTOR_IMPORTS"))
    assert "ld_spark.zip" in line and str(REPO / "ld_spark") not in line, line


@pytest.mark.last
def test_spark_submit_on_the_cluster_gives_the_local_mode_results(
    spark, cluster, cluster_run, finished_run, finished_contents
):
    """The cluster run (started by its fixture, run beside the rest of the suite) gives the
    local-mode results."""
    _, _, work = cluster
    local_out, _ = finished_run
    out, job = cluster_run
    code, stdout, stderr = job.wait()
    assert code == 0, stdout[-2000:] + stderr[-4000:]
    # It ran on the cluster: the master registered the job's application and both workers
    # launched executors for it (the probe job's folders do not count).
    app = re.search(r"Registered app ld-spark with ID (app-\S+)", (work / "master.log").read_text())
    assert app, (work / "master.log").read_text()[-3000:]
    assert (work / "work1" / app.group(1)).is_dir() and (work / "work2" / app.group(1)).is_dir()

    def estimates(root: Path, name: str) -> dict[tuple, dict]:
        with (root / "results" / name).open() as handle:
            return {(r.get("subgroup"), r["estimand"]): r for r in csv.DictReader(handle)}

    # Fitted numbers: equal to the last bits a different summation order can move.
    for name in ("estimates.csv", "subgroups.csv"):
        local, remote = estimates(local_out, name), estimates(out, name)
        assert list(local) == list(remote)
        for key, row in local.items():
            for column in ("estimate", "ci_low", "ci_high", "p_value"):
                a, b = row[column], remote[key][column]
                assert (a == b == "") or float(a) == pytest.approx(float(b), rel=1e-9, abs=1e-12), (key, column, a, b)
            assert row["n"] == remote[key]["n"]
    from conftest import table_contents

    from ld_spark import catalog

    local_tables = {
        k: v
        for k, v in finished_contents.items()
        if k.startswith("analysis") and k != catalog.SENSITIVITY.label and not k.startswith("analysis/sensitivity/")
    }
    remote_tables = table_contents(spark, out, layer="analysis")
    assert local_tables.keys() == remote_tables.keys() and len(local_tables) >= 8
    fitted = ("analysis/estimates",)
    differ = [k for k in local_tables if local_tables[k] != remote_tables[k] and k not in fitted]
    assert not differ, differ
    # The exact fits too (the released files withhold the rows made of small cells at this scale).
    from ld_spark import io

    local_fits, remote_fits = (
        {r["estimand"]: r for r in io.read_delta(spark, catalog.path(root, catalog.ESTIMATES)).collect()}
        for root in (local_out, out)
    )
    assert local_fits.keys() == remote_fits.keys()
    for name, row in local_fits.items():
        for column in ("estimate", "ci_low", "ci_high", "p_value"):
            a, b = row[column], remote_fits[name][column]
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-9, abs=1e-12), (name, column, a, b)
