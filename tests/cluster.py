"""A real Spark standalone cluster for the tests: a master and two workers on 127.0.0.1.

The cluster is started from the pip wheel's `bin/spark-class`, as on a machine without a Spark
install. Jobs reach it the way they would reach any cluster: `spark-submit --master spark://...`
with the Delta and Splink jars in `--jars` and the project's code in `--py-files` (a zip of
`ld_spark/`). Every process started here is stopped by its pid. Used by conftest's `cluster`
and `cluster_run` fixtures; tests/test_cluster.py asserts on what they did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Each worker offers two one-core executor slots and each application takes at most two cores
# (one executor on each worker: the master spreads them), so the probe job can run while the
# whole-pipeline run holds its executors.
WORKER_CORES, APP_CORES = 2, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


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


@contextlib.contextmanager
def standalone(work: Path) -> Iterator[tuple[str, list[int]]]:
    """spark://127.0.0.1:PORT with two workers (work/work1, work/work2); yields (URL, pids)."""
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work),
        "SPARK_WORKER_DIR": str(work / "work"),
    }
    spark_class = str(spark_home() / "bin" / "spark-class")
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
            *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())),
        )
        wait_for_port(port, master, master_log)
        url = f"spark://127.0.0.1:{port}"
        for i in (1, 2):
            worker, log = start(
                f"worker{i}",
                "org.apache.spark.deploy.worker.Worker",
                url,
                *("--host", "127.0.0.1", "--cores", str(WORKER_CORES), "--memory", "5g"),
                *("--webui-port", str(free_port()), "--work-dir", str(work / f"work{i}")),
            )
            wait_for_log("Successfully registered with master", worker, log)
        yield url, [p.pid for p in processes]
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
    """spark-submit of `script` to the cluster, with the jars and a zip of ld_spark/ made in work."""
    jars = subprocess.run(
        [sys.executable, "-m", "ld_spark.setup_jars", "--list"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    code = shutil.make_archive(str(work / "ld_spark"), "zip", root_dir=REPO, base_dir="ld_spark")
    return [
        str(spark_home() / "bin" / "spark-submit"),
        *("--master", url, "--deploy-mode", "client", "--jars", jars, "--py-files", code),
        *("--driver-memory", "3g", "--executor-memory", "2g"),
        *("--conf", f"spark.cores.max={APP_CORES}", "--conf", "spark.executor.cores=1"),
        *("--conf", f"spark.pyspark.python={sys.executable}", "--conf", "spark.driver.host=127.0.0.1"),
        script,
        *args,
    ]


def submit(
    url: str, script: str, *args: str, work: Path, env: dict, timeout: int = 1800
) -> subprocess.CompletedProcess:
    command = submit_command(url, script, *args, work=work)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
