"""The one place a SparkSession is built."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from ld_spark.config import Config, SparkConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _project_path(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def cached_jars(conf: SparkConf) -> list[Path]:
    jars_dir = _project_path(conf.jars_dir)
    return sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []


def splink_jar() -> Path:
    """Splink's string-similarity UDFs (jaro_winkler, ...), shipped in its wheel, built for Spark 4."""
    from splink.backends.spark import similarity_jar_location

    return Path(similarity_jar_location())


def submitted_by_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _builder(conf: SparkConf, jars: list[Path] | None) -> SparkSession.Builder:
    builder = SparkSession.builder.appName(conf.app_name)
    submitted = submitted_by_spark_submit()
    if not submitted:
        # Under spark-submit, --master, --jars/--packages and driver memory are its to set.
        builder = builder.master(conf.master).config("spark.driver.memory", conf.driver_memory)
    builder = (
        builder.config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        # Delta rebuilds a table's state from its log on every read and write with this many
        # tasks (default 50): far more than a log of a few hundred files needs.
        .config("spark.databricks.delta.snapshotPartitions", str(conf.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.showConsoleProgress", str(conf.console_progress).lower())
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if conf.master.startswith("local") and not submitted:
        builder = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
        )
    # Under spark-submit, its --jars / --packages have already given the session its jars.
    if not submitted and jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in [*jars, splink_jar()]))
    elif not submitted:
        # No cached jars (e.g. a cluster image that ships them elsewhere): let Ivy resolve.
        builder = (
            builder.config("spark.jars.packages", conf.delta_package)
            .config("spark.jars.ivy", str(_project_path(conf.ivy_dir)))
            .config("spark.jars", str(splink_jar()))
        )
    for key, value in conf.extra.items():
        builder = builder.config(key, value)
    return builder


def build(config: Config) -> SparkSession:
    """Build (or join, under spark-submit) the SparkSession with Delta enabled."""
    if config.spark.master.startswith("local") and not submitted_by_spark_submit():
        # Python workers run the same interpreter (and venv) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = _builder(config.spark, cached_jars(config.spark)).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def fetch_jars(config: Config) -> list[Path]:
    """Resolve the Delta jars from Maven Central once and copy them into jars_dir.

    Run by `make setup`; afterwards sessions load the jars from disk and need no network.
    """
    conf = config.spark
    jars_dir = _project_path(conf.jars_dir)
    if cached_jars(conf):
        return cached_jars(conf)
    spark = _builder(conf.model_copy(update={"master": "local[1]"}), jars=None).getOrCreate()
    spark.range(1).count()
    spark.stop()
    resolved = sorted((_project_path(conf.ivy_dir) / "jars").glob("*.jar"))
    if not resolved:
        raise RuntimeError(f"Ivy resolved no jars for {conf.delta_package} into {conf.ivy_dir}/jars")
    jars_dir.mkdir(parents=True, exist_ok=True)
    for jar in resolved:
        shutil.copy2(jar, jars_dir / jar.name)
    return cached_jars(conf)
