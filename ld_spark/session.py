"""The one place a SparkSession is built."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from ld_spark import io, memory
from ld_spark.config import Config, SparkConf, jvm_bytes

PROJECT_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


def _project_path(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def cached_jars(conf: SparkConf) -> list[Path]:
    jars_dir = _project_path(conf.jars_dir)
    return sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []


def object_store_jars(conf: SparkConf) -> list[Path]:
    """hadoop-aws and the AWS SDK bundle it needs (s3a://), if `make setup` fetched them."""
    jars_dir = _project_path(conf.object_store_jars_dir)
    return sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []


def with_object_store_jars(conf: SparkConf) -> None:
    """s3a:// for the local JVM this process starts: the s3a jars at the END of its class path
    (SPARK_DIST_CLASSPATH; spark.driver.extraClassPath would put them first). The AWS SDK bundle
    carries its own copy of SLF4J 1.x, which ahead of Spark's would silence Spark's logging.
    Not shipped with spark.jars: the bundle is half a gigabyte, and every session would copy it."""
    jars = object_store_jars(conf)
    present = os.environ.get("SPARK_DIST_CLASSPATH", "")
    if jars and str(jars[0]) not in present:
        os.environ["SPARK_DIST_CLASSPATH"] = ":".join([p for p in [present] if p] + [str(j) for j in jars])


def splink_jar() -> Path:
    """Splink's string-similarity UDFs (jaro_winkler, ...), shipped in its wheel, built for Spark 4."""
    from splink.backends.spark import similarity_jar_location

    return Path(similarity_jar_location())


def submitted_by_spark_submit(environ: Mapping[str, str] = os.environ) -> bool:
    """spark-submit starts the JVM first and hands Python its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in environ


# `spark.gc` -> the JVM's option that picks the collector.
GC_OPTIONS = {"parallel": "-XX:+UseParallelGC", "g1": "-XX:+UseG1GC", "serial": "-XX:+UseSerialGC"}
# Any HotSpot collector named on: two make the JVM refuse to start ("Multiple garbage collectors
# selected"), so one the site names already stands and `spark.gc` is left out.
NAMED_COLLECTOR = re.compile(r"-XX:\+Use(?:Serial|Parallel|ParallelOld|G1|Z|Shenandoah|Epsilon|ConcMarkSweep)GC\b")
# Where else the driver JVM of a local run takes options from: the JVM's own variables and
# spark-submit's (SPARK_SUBMIT_OPTS, PYSPARK_SUBMIT_ARGS' --driver-java-options), and in Spark's conf
# folder java-opts, spark-env.sh (which spark-class sources) and spark-defaults.conf's
# spark.driver.defaultJavaOptions, which spark.extra may set too.
JAVA_OPTION_VARIABLES = (
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "SPARK_SUBMIT_OPTS",
    "PYSPARK_SUBMIT_ARGS",
)
DEFAULT_JAVA_OPTIONS = "spark.driver.defaultJavaOptions"


def spark_home(environ: Mapping[str, str] = os.environ) -> Path:
    """The Spark that spark-submit and spark-class run from: $SPARK_HOME, or pip's pyspark folder."""
    from pyspark.find_spark_home import _find_spark_home

    return Path(environ.get("SPARK_HOME") or _find_spark_home())


def spark_conf_dir(environ: Mapping[str, str]) -> Path:
    """The folder spark-submit reads its conf files from: $SPARK_CONF_DIR, or $SPARK_HOME/conf."""
    conf_dir = environ.get("SPARK_CONF_DIR")
    if conf_dir:
        return Path(conf_dir)
    return spark_home(environ) / "conf"


def collector_named_elsewhere(conf: SparkConf, environ: Mapping[str, str]) -> str | None:
    """Where the driver JVM would already be told its collector, e.g. "JAVA_TOOL_OPTIONS names
    -XX:+UseG1GC"; None when nowhere."""
    places = {name: environ.get(name, "") for name in JAVA_OPTION_VARIABLES}
    places[f"spark.extra's {DEFAULT_JAVA_OPTIONS}"] = conf.extra.get(DEFAULT_JAVA_OPTIONS, "")
    folder = spark_conf_dir(environ)
    for name in ("java-opts", "spark-env.sh"):
        if (folder / name).is_file():
            places[str(folder / name)] = (folder / name).read_text(errors="replace")
    defaults = folder / "spark-defaults.conf"
    if defaults.is_file():
        lines = defaults.read_text(errors="replace").splitlines()
        places[f"{defaults}'s {DEFAULT_JAVA_OPTIONS}"] = "\n".join(
            line for line in lines if line.strip().startswith(DEFAULT_JAVA_OPTIONS)
        )
    for place, options in places.items():
        if found := NAMED_COLLECTOR.search(options):
            return f"{place} names {found.group(0)}"
    return None


def driver_java_options(conf: SparkConf, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The driver JVM's options (a local run's one JVM). Under spark-submit the JVM has already
    started and its options are spark-submit's: these are set in the conf but change nothing,
    and no collector is looked for or named.
    `spark.gc`'s collector is left out when the environment names one already, with a warning in
    the log when that one is another collector."""
    options = ["-Duser.timezone=UTC"]
    if conf.gc_time_ratio:
        options.append(f"-XX:GCTimeRatio={conf.gc_time_ratio}")
    if conf.gc and not submitted_by_spark_submit(environ):
        elsewhere = collector_named_elsewhere(conf, environ)
        if elsewhere is None:
            options.append(GC_OPTIONS[conf.gc])
        elif not elsewhere.endswith(GC_OPTIONS[conf.gc]):
            log.warning("spark.gc: %s left out: %s, and the JVM takes one collector", conf.gc, elsewhere)
    return options


def driver_heap(conf: SparkConf, raw: str | Path | None = None) -> str:
    """The heap (-Xmx) of a local run's JVM: `driver_memory`, or with `auto` `heap.base` +
    `heap.per_raw_byte` x the extract's bytes (io.raw_bytes), at most `heap.max`, in whole MiB;
    `heap.unknown` when there is no extract (generate, forget), or its size cannot be read before
    the JVM starts (an object store's) or it is missing. conf/base.yaml says why these numbers."""
    if conf.driver_memory != "auto":
        return conf.driver_memory
    heap = conf.heap
    size = None if raw is None else io.raw_bytes(raw, heap.parquet_as_csv)
    if size is None:
        return heap.unknown
    wanted = jvm_bytes(heap.base) + heap.per_raw_byte * size
    return f"{math.ceil(min(wanted, jvm_bytes(heap.max)) / 2**20)}m"


def _builder(conf: SparkConf, jars: list[Path] | None, heap: str, delta: bool = True) -> SparkSession.Builder:
    builder = SparkSession.builder.appName(conf.app_name)
    submitted = submitted_by_spark_submit()
    if not submitted:
        # Under spark-submit, --master, --jars/--packages and driver memory are its to set.
        builder = builder.master(conf.master).config("spark.driver.memory", heap)
    builder = (
        builder.config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        # Delta rebuilds a table's state from its log on every read and write with this many
        # tasks (default 50): far more than a log of a few hundred files needs.
        .config("spark.databricks.delta.snapshotPartitions", str(conf.delta_snapshot_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", " ".join(driver_java_options(conf)))
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.ui.showConsoleProgress", str(conf.console_progress).lower())
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if delta:
        builder = builder.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension").config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
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


def build(config: Config, raw: str | Path | None = None) -> SparkSession:
    """Build (or join, under spark-submit) the SparkSession with Delta enabled; `raw`, the
    extract the session will read, sizes a local JVM's heap when `driver_memory` is `auto`."""
    if config.spark.master.startswith("local") and not submitted_by_spark_submit():
        # Python workers run the same interpreter (and venv) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        # Before the JVM starts: it and its Python workers take the cap from the environment.
        memory.limit_child_arenas(config.spark.malloc_arena_max)
    # The driver's own, on any master (its threads fit the sensitivity analyses everywhere).
    memory.limit_arenas(config.spark.malloc_arena_max)
    if config.spark.master.startswith("local") and not submitted_by_spark_submit():
        with_object_store_jars(config.spark)
    spark = _builder(config.spark, cached_jars(config.spark), driver_heap(config.spark, raw)).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def fetch_jars(config: Config, object_store: bool = True) -> list[Path]:
    """Resolve the Delta jars, and the s3a ones, from Maven Central once and copy them into
    their folders (jars_dir, object_store_jars_dir).

    Run by `make setup`; afterwards sessions load the jars from disk and need no network.
    """
    import subprocess

    conf = config.spark
    wanted = [(conf.delta_package, conf.jars_dir, cached_jars)]
    if object_store:
        wanted.append((conf.object_store_package, conf.object_store_jars_dir, object_store_jars))
    for package, into, found in wanted:
        if not found(conf):
            # A process each: Ivy resolves when the JVM starts, and one process starts one JVM.
            subprocess.run([sys.executable, "-m", "ld_spark.setup_jars", "--resolve", package, into], check=True)
    return cached_jars(conf)


def resolve(conf: SparkConf, package: str, into: str) -> None:
    """Ivy resolves `package` (and what it depends on) in a throwaway local session; its jars are
    copied into `into`. Each package has its own Ivy folder, so each folder holds its own jars."""
    ivy = _project_path(conf.ivy_dir) / package.split(":")[1]
    resolving = conf.model_copy(update={"master": "local[1]", "delta_package": package, "ivy_dir": str(ivy)})
    spark = _builder(resolving, None, driver_heap(resolving), delta=package == conf.delta_package).getOrCreate()
    spark.range(1).count()
    spark.stop()
    resolved = sorted((ivy / "jars").glob("*.jar"))
    if not resolved:
        raise RuntimeError(f"Ivy resolved no jars for {package} into {ivy}/jars")
    jars_dir = _project_path(into)
    jars_dir.mkdir(parents=True, exist_ok=True)
    for jar in resolved:
        shutil.copy2(jar, jars_dir / jar.name)
