"""One Spark session for the whole test run, and one small synthetic extract shared by tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# One pseudonymisation key for every run of the session, in this process or a child, given the
# way a deployment gives it (the environment); the identifier scan searches the outputs for it.
SESSION_KEY = "session-test-key-" + "9" * 20
os.environ["LD_SPARK_HMAC_KEY"] = SESSION_KEY
REPO = Path(__file__).resolve().parents[1]

from ld_spark import config as config_module  # noqa: E402
from ld_spark import session as session_module  # noqa: E402


def pytest_collection_modifyitems(items):
    """Tests marked `last` go to the end, in their order: they check work (the cluster run)
    that their fixtures start in the background when an earlier test first asks for them."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def config() -> config_module.Config:
    return config_module.load("test")


@pytest.fixture(scope="session")
def spark(config):
    spark = session_module.build(config)
    yield spark
    spark.stop()


@pytest.fixture
def no_python_rdd(spark, monkeypatch):
    """A Python list (or an empty pandas frame) given to createDataFrame is parallelized into a
    Python RDD, which starts pyspark's Python workers: refused here."""

    def refused(*args, **kwargs):
        raise AssertionError("a Python RDD was made (it starts pyspark's Python workers)")

    monkeypatch.setattr(type(spark.sparkContext), "parallelize", refused)
    return spark


def _generated(spark, config, tmp_path_factory, name: str, scale: float, seed: int):
    """A synthetic extract written once for the session: (raw root, rows per table)."""
    from ld_spark.synth.generate import generate

    out = tmp_path_factory.mktemp(name) / "extract"
    return out, generate(spark, config.generator, seed=seed, scale=scale, out=out)


@pytest.fixture(scope="session")
def extract(spark, config, tmp_path_factory):
    """The calibration extract: big enough that shares and planted effects show through the
    noise (about 1,700 evaluation-cohort people), small enough to generate in about a minute."""
    return _generated(spark, config, tmp_path_factory, "raw", scale=0.2, seed=7)


@pytest.fixture(scope="session")
def small_extract(spark, config, tmp_path_factory):
    """The pipeline's end-to-end extract: every stage, linkage included, in a few minutes here."""
    return _generated(spark, config, tmp_path_factory, "raw_small", scale=0.05, seed=11)


TINY_ROWS = 60


@pytest.fixture(scope="session")
def tiny(small_extract, tmp_path_factory) -> Path:
    """The first TINY_ROWS rows of the first file of every table of the small extract, as
    part-0.csv: the extract that damage tests copy and break."""
    import csv

    from ld_spark.contract import TABLES

    raw, _ = small_extract
    root = tmp_path_factory.mktemp("tiny") / "raw"
    for table in TABLES:
        first = sorted((raw / table).glob("*.csv"))[0]
        with first.open(newline="") as handle:
            rows = list(csv.reader(handle))[: TINY_ROWS + 1]
        (root / table).mkdir(parents=True)
        with (root / table / "part-0.csv").open("w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
    return root


@pytest.fixture(scope="session")
def run_config(config, tmp_path_factory):
    """The test config with its own MLflow store."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{store}"})})


def cli_command(raw, out) -> list[str]:
    return [sys.executable, "-m", "ld_spark.cli", "run", "--raw", str(raw), "--out", str(out), "--conf", "test"]


def cli_env(tracking_uri: str) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(REPO)}


def cli_run(raw, out, tracking_uri: str) -> subprocess.CompletedProcess:
    """`ld-spark run --conf test` as a user runs it: a process of its own (its own Spark too)."""
    return subprocess.run(
        cli_command(raw, out), cwd=REPO, env=cli_env(tracking_uri), capture_output=True, text=True, timeout=1800
    )


@pytest.fixture(scope="session", autouse=True)
def finished_run_started(request, run_config, tmp_path_factory):
    """The session's finished run, started before the first test when any selected test reads
    it, so that the tests which do not need it run meanwhile (the run leaves much of this
    machine idle): (out dir, the process, its output file), or None."""
    if not any("finished_run_printed" in item.fixturenames for item in request.session.items):
        yield None
        return
    raw, _ = request.getfixturevalue("small_extract")
    out = tmp_path_factory.mktemp("out")
    printed = tmp_path_factory.mktemp("out_printed") / "printed.txt"
    with printed.open("w") as handle:
        proc = subprocess.Popen(
            cli_command(raw, out),
            cwd=REPO,
            env=cli_env(run_config.mlflow.tracking_uri),
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
    yield out, proc, printed
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def finished_run_printed(finished_run_started, small_extract):
    """`ld-spark run` once on the small extract, in a process of its own so that everything it
    prints is kept (Spark's log goes to OUT/logs/): (out dir, rows per table, what it printed).
    Every test that reads a finished run reads this one."""
    out, proc, printed = finished_run_started
    _, counts = small_extract
    code = proc.wait(timeout=1800)
    text = printed.read_text()
    assert code == 0, text[-6000:]
    return out, counts, text


@pytest.fixture(scope="session")
def finished_run(finished_run_printed):
    """The session's finished run: (out dir, rows per table)."""
    out, counts, _ = finished_run_printed
    return out, counts


@pytest.fixture(scope="session")
def finished_contents(spark, finished_run) -> dict[str, tuple[int, int]]:
    """The finished run's tables, hashed once for every test that compares another run with it."""
    out, _ = finished_run
    return table_contents(spark, out)


@pytest.fixture(scope="session")
def killed_and_rerun(spark, run_config, finished_run, finished_contents, small_extract, tmp_path_factory):
    """The finished run's output after a run killed mid-write and an in-process rerun (tests/crash.py).
    The rerun is the session's second finished run in the MLflow store."""
    from crash import kill_mid_write_then_rerun

    raw, _ = small_extract
    out, _ = finished_run
    return kill_mid_write_then_rerun(
        spark,
        run_config,
        raw,
        out,
        tmp_path_factory.mktemp("crash"),
        finished_contents,
        lambda root: table_contents(spark, root),
    )


def delta_tables(out) -> list:
    return sorted(p.parent for p in out.rglob("_delta_log"))


# Columns that record which run wrote a row, not what the row says.
RUN_COLUMNS = {"run_id"}
# Kept Splink scores (linkage/scores/pairs) are compared by their pairs, not their weights: a run
# that trains again learns the same model but for the last bits (DuckDB sums in parallel), and
# scores every pair again with it.
UNSTABLE_COLUMNS = {"match_weight"}


def table_contents(spark, out, layer: str = "") -> dict[str, tuple[int, int]]:
    """Every Delta table under out (or under out/layer) -> (rows, order-free checksum of its rows):
    equal content, equal value. One Spark job for all of them (a job per table is mostly scheduling)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    from ld_spark import io
    from ld_spark.frames import union_all

    names = {
        str(path.relative_to(out)): path for path in delta_tables(out) if str(path.relative_to(out)).startswith(layer)
    }
    if not names:
        return {}
    hashed = []
    for name, path in names.items():
        df = io.read_delta(spark, path)
        # A map is hashed as its sorted entries (Spark will not hash a map: equal maps may differ in order).
        columns = [
            F.array_sort(F.map_entries(c)) if isinstance(df.schema[c].dataType, MapType) else F.col(c)
            for c in sorted(c for c in df.columns if c not in RUN_COLUMNS | UNSTABLE_COLUMNS)
        ]
        hashed.append(df.select(F.lit(name).alias("table"), F.xxhash64(*columns).cast("decimal(38,0)").alias("h")))
    rows = union_all(hashed).groupBy("table").agg(F.count("*").alias("n"), F.sum("h").alias("h")).collect()
    contents = {name: (0, 0) for name in names}  # an empty table has no row in the aggregate
    contents.update({r["table"]: (int(r["n"]), int(r["h"] or 0)) for r in rows})
    return contents


def sql_descriptions(spark) -> dict[int, str]:
    """Every SQL execution of the session so far: id -> description (Spark's SQL status store)."""
    executions = spark._jsparkSession.sharedState().statusStore().executionsList()
    return {executions.apply(i).executionId(): executions.apply(i).description() for i in range(executions.size())}
