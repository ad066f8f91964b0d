"""Memory in the run's processes: glibc's allocator (ld_spark/memory.py), the driver's heap sized to
the extract (ld_spark/session.py), small frames made without Python workers (ld_spark/frames.py)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ld_spark import config as config_module
from ld_spark import memory, session

glibc = pytest.mark.skipif(memory._glibc() is None, reason="glibc's allocator only")


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@glibc
def test_the_jvm_starts_with_the_arena_cap_from_conf(spark, config):
    assert config.spark.malloc_arena_max == 2  # base.yaml's, which test.yaml keeps
    jvm = spark.sparkContext._gateway.proc.pid  # spark-submit execs spark-class, which execs java
    environ = Path(f"/proc/{jvm}/environ").read_bytes().split(b"\0")
    assert b"MALLOC_ARENA_MAX=2" in environ


def test_the_jvm_runs_with_the_gc_time_ratio_from_conf_beside_utc(spark, config):
    assert config.spark.gc_time_ratio == 4  # base.yaml's, which test.yaml keeps
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    arguments = list(runtime.getInputArguments())
    assert "-XX:GCTimeRatio=4" in arguments
    assert "-Duser.timezone=UTC" in arguments


def test_the_jvm_collects_with_the_collector_from_conf(spark, config):
    assert config.spark.gc == "parallel"  # base.yaml's, which test.yaml keeps
    beans = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert sorted(bean.getName() for bean in beans) == ["PS MarkSweep", "PS Scavenge"]  # G1's are "G1 ..."


def test_no_gc_time_ratio_or_collector_leaves_the_jvms_defaults(config, tmp_path):
    conf = config.spark.model_copy(update={"gc_time_ratio": None, "gc": None})
    assert session.driver_java_options(conf, {"SPARK_CONF_DIR": str(tmp_path)}) == ["-Duser.timezone=UTC"]


def test_each_collector_in_conf_names_its_option_and_an_unknown_one_is_refused(config, tmp_path):
    from pydantic import ValidationError

    nowhere = {"SPARK_CONF_DIR": str(tmp_path)}  # no spark-defaults.conf, no JAVA_TOOL_OPTIONS
    for gc, option in [("parallel", "-XX:+UseParallelGC"), ("g1", "-XX:+UseG1GC"), ("serial", "-XX:+UseSerialGC")]:
        conf = config.spark.model_copy(update={"gc_time_ratio": None, "gc": gc})
        assert session.driver_java_options(conf, nowhere) == ["-Duser.timezone=UTC", option]
    with pytest.raises(ValidationError, match="gc"):
        config_module.SparkConf(**{**config.spark.model_dump(), "gc": "zgc"})


@pytest.mark.parametrize(
    "variable", ["JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "SPARK_SUBMIT_OPTS", "PYSPARK_SUBMIT_ARGS"]
)
def test_a_collector_the_environment_names_stands_and_spark_gc_is_left_out(config, tmp_path, caplog, variable):
    environ = {"SPARK_CONF_DIR": str(tmp_path), variable: "-Xss4m -XX:+UseG1GC"}
    assert config.spark.gc == "parallel"
    with caplog.at_level("WARNING", logger="ld_spark.session"):
        assert session.driver_java_options(config.spark, environ) == ["-Duser.timezone=UTC", "-XX:GCTimeRatio=4"]
    assert f"spark.gc: parallel left out: {variable} names -XX:+UseG1GC" in caplog.text


def test_a_collector_in_spark_defaults_or_spark_extra_stands(config, tmp_path):
    nowhere = {"SPARK_CONF_DIR": str(tmp_path)}
    defaults = tmp_path / "spark-defaults.conf"
    # extraJavaOptions there is replaced by the run's own; only defaultJavaOptions reaches the JVM.
    defaults.write_text("spark.driver.extraJavaOptions -XX:+UseSerialGC\n")
    assert session.driver_java_options(config.spark, nowhere)[-1] == "-XX:+UseParallelGC"
    defaults.write_text("# the site's\nspark.driver.defaultJavaOptions  -XX:+UseZGC -Xss4m\n")
    assert (
        session.collector_named_elsewhere(config.spark, nowhere)
        == f"{defaults}'s {session.DEFAULT_JAVA_OPTIONS} names -XX:+UseZGC"
    )
    assert "-XX:+UseParallelGC" not in session.driver_java_options(config.spark, nowhere)
    defaults.unlink()
    for name, text in [("java-opts", "-XX:+UseG1GC\n"), ("spark-env.sh", "export SPARK_SUBMIT_OPTS='-XX:+UseG1GC'\n")]:
        (tmp_path / name).write_text(text)
        assert session.collector_named_elsewhere(config.spark, nowhere) == f"{tmp_path / name} names -XX:+UseG1GC"
        (tmp_path / name).unlink()
    extra = config.spark.model_copy(update={"extra": {"spark.driver.defaultJavaOptions": "-XX:+UseSerialGC"}})
    assert (
        session.collector_named_elsewhere(extra, nowhere)
        == "spark.extra's spark.driver.defaultJavaOptions names -XX:+UseSerialGC"
    )
    # Options that only look like a collector's leave spark.gc in.
    lookalikes = {**nowhere, "JAVA_TOOL_OPTIONS": "-XX:+UseGCOverheadLimit -XX:-UseG1GC -XX:+UseCompressedOops"}
    assert session.driver_java_options(config.spark, lookalikes)[-1] == "-XX:+UseParallelGC"


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else "java"  # as spark-class finds it


def test_the_jvm_starts_when_the_environment_names_its_own_collector(config, tmp_path):
    """HotSpot refuses two collectors; with one in JAVA_TOOL_OPTIONS the driver's options must
    start a JVM, which then collects with the environment's."""
    environ = {**os.environ, "SPARK_CONF_DIR": str(tmp_path), "JAVA_TOOL_OPTIONS": "-XX:+UseSerialGC"}
    options = session.driver_java_options(config.spark, environ)
    started = subprocess.run(
        [_java(), *options, "-XX:+PrintCommandLineFlags", "-version"], env=environ, capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    assert "-XX:+UseSerialGC" in started.stdout


def test_no_warning_when_the_collector_named_elsewhere_is_conf_s_or_the_jvm_was_started_by_spark_submit(
    config, tmp_path, caplog
):
    same = {"SPARK_CONF_DIR": str(tmp_path), "JAVA_TOOL_OPTIONS": "-XX:+UseParallelGC"}
    submitted = {"SPARK_CONF_DIR": str(tmp_path), "JAVA_TOOL_OPTIONS": "-XX:+UseG1GC", "PYSPARK_GATEWAY_PORT": "1"}
    with caplog.at_level("WARNING", logger="ld_spark.session"):
        for environ in (same, submitted):
            assert session.driver_java_options(config.spark, environ) == ["-Duser.timezone=UTC", "-XX:GCTimeRatio=4"]
    assert caplog.text == ""


def test_under_spark_submit_no_collector_is_named_its_jvm_running_already(config, tmp_path):
    submitted = {"SPARK_CONF_DIR": str(tmp_path), "PYSPARK_GATEWAY_PORT": "1"}
    assert session.driver_java_options(config.spark, submitted) == ["-Duser.timezone=UTC", "-XX:GCTimeRatio=4"]


def test_the_cap_goes_to_child_processes_through_the_environment(monkeypatch):
    monkeypatch.setenv(memory.ENVIRONMENT, "")  # recorded, so the value set below is undone after
    monkeypatch.delenv(memory.ENVIRONMENT)
    memory.limit_child_arenas(2)
    assert os.environ[memory.ENVIRONMENT] == "2"


def test_a_cap_already_in_the_environment_is_kept(monkeypatch):
    monkeypatch.setenv(memory.ENVIRONMENT, "1")
    memory.limit_child_arenas(4)
    assert os.environ[memory.ENVIRONMENT] == "1"


def test_no_cap_leaves_the_environment_alone(monkeypatch):
    monkeypatch.delenv(memory.ENVIRONMENT, raising=False)
    memory.limit_child_arenas(None)
    assert memory.ENVIRONMENT not in os.environ


# Eight threads allocating at once, then glibc's own count of its arenas (malloc_stats prints
# one "Arena N:" block per arena to stderr).
ARENAS = """
import ctypes, sys, threading
from ld_spark import memory
memory.limit_arenas(int(sys.argv[1]))
start = threading.Barrier(8)
def work():
    start.wait()
    kept = [bytearray(1024) for _ in range(20_000)]
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def _arenas(cap: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", ARENAS, str(cap)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != memory.ENVIRONMENT},
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@glibc
def test_the_process_makes_no_more_arenas_than_the_cap():
    assert _arenas(1) == 1
    assert _arenas(64) > 1  # the same threads without a cap do make more: the count can tell


@glibc
def test_freed_memory_below_a_live_allocation_goes_back_to_the_system():
    # 200k blocks of 1 KiB (malloc's, not Python's small-object pools), all freed but the last:
    # the live block at the top keeps malloc from shrinking the heap on its own.
    blocks = [bytearray(1024) for _ in range(200_000)]
    last = blocks[-1]
    del blocks
    freed = _rss_mib()
    memory.hand_back()
    assert _rss_mib() < freed - 100
    assert len(last) == 1024


# The driver's heap sized to the extract (spark.driver_memory: auto; ld_spark/session.py).


def _auto(config, **heap):
    spark = config.spark
    return spark.model_copy(update={"driver_memory": "auto", "heap": spark.heap.model_copy(update=heap)})


@pytest.fixture
def extract(tmp_path):
    """1 MiB and a byte of CSV in one table, 1 MiB of parquet in a table of a folder of tables, and
    10 MiB of truth beside them."""
    for folder, name, size in [
        ("ld_referrals", "a.csv", 2**20 + 1),
        ("pnc/offences", "b.PARQUET", 2**20),
        ("_truth", "c.csv", 10 * 2**20),
    ]:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / name).write_bytes(b"x" * size)
    return tmp_path


def test_auto_heap_is_the_base_plus_the_tables_bytes_times_the_factor(config, extract):
    conf = _auto(config, base="1g", per_raw_byte=3.0, parquet_as_csv=4.0, max="8g")
    # 1024 MiB + 3 x (1 MiB + 1 byte of CSV + 4 x 1 MiB of parquet) = 1039 MiB + 3 bytes, rounded
    # up to the next MiB; the truth is not a table.
    assert session.driver_heap(conf, extract) == "1040m"
    assert session.driver_heap(conf, str(extract)) == "1040m"


def test_auto_heap_stops_at_the_max(config, extract):
    assert session.driver_heap(_auto(config, base="1g", per_raw_byte=2000.0, max="6g"), extract) == "6144m"


def test_auto_heap_without_a_readable_size_is_the_unknown_one(config, tmp_path):
    conf = _auto(config, unknown="5g")
    assert session.driver_heap(conf, "s3a://bucket/raw") == "5g"
    assert session.driver_heap(conf, None) == "5g"
    assert session.driver_heap(conf, tmp_path / "missing") == "5g"


def test_a_heap_given_as_a_size_is_kept(config, extract):
    assert session.driver_heap(config.spark.model_copy(update={"driver_memory": "2560m"}), extract) == "2560m"


@pytest.mark.parametrize("size", ["3 GB", "lots", "0g", "2.5g", "Auto", "4096"])
def test_a_heap_the_jvm_would_not_take_is_refused_by_the_config(config, size):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="driver_memory"):
        config_module.SparkConf(**{**config.spark.model_dump(), "driver_memory": size})
    with pytest.raises(ValidationError, match="base"):
        config_module.HeapConf(**{**config.spark.heap.model_dump(), "base": size})


def test_a_heap_base_or_unknown_above_its_max_is_refused_by_the_config(config):
    from pydantic import ValidationError

    heap = {**config.spark.heap.model_dump(), "base": "2g", "unknown": "2g"}
    with pytest.raises(ValidationError, match="base 3g is above max 2560m"):
        config_module.HeapConf(**{**heap, "base": "3g", "max": "2560m"})
    with pytest.raises(ValidationError, match="unknown 3g is above max 2560m"):
        config_module.HeapConf(**{**heap, "unknown": "3g", "max": "2560m"})
    assert config_module.HeapConf(**{**heap, "base": "2560m", "unknown": "2560m", "max": "2560m"}).max == "2560m"


@pytest.mark.parametrize("command", [["run", "--out", "OUT"], ["check"]])
def test_a_command_on_an_extract_sizes_its_session_to_it(monkeypatch, extract, command):
    from ld_spark import cli

    built = []

    def build(config, raw=None):
        built.append(raw)
        raise RuntimeError("stop before a JVM")

    monkeypatch.setattr(session, "build", build)
    argv = [command[0], "--raw", str(extract), *[str(extract / a) if a == "OUT" else a for a in command[1:]]]
    with pytest.raises(RuntimeError, match="before a JVM"):
        cli.main([*argv, "--conf", "test", "--verbose"])
    assert built == [str(extract)]


# Small frames of the driver's rows through Arrow, not a Python RDD (frames.local_frame).


# no_python_rdd: tests/conftest.py


def test_a_local_frame_keeps_nan_apart_from_null_and_the_schema(spark, no_python_rdd):
    from ld_spark.frames import local_frame

    schema = "estimand string, estimate double, n long, kept boolean"
    rows = [
        {"estimand": "a", "estimate": float("nan"), "n": None, "kept": True},
        {"estimand": None, "estimate": None, "n": 12_345_678_901, "kept": None},
    ]
    df = local_frame(spark, rows, schema)
    assert df.schema.simpleString() == "struct<estimand:string,estimate:double,n:bigint,kept:boolean>"
    first, second = df.collect()
    assert first["estimand"] == "a" and math.isnan(first["estimate"]) and first["n"] is None and first["kept"]
    assert second.asDict() == {"estimand": None, "estimate": None, "n": 12_345_678_901, "kept": None}


def test_a_local_frame_takes_tuples_in_the_schemas_order_and_no_rows(spark, no_python_rdd):
    from ld_spark.frames import local_frame

    assert local_frame(spark, [("c1", True)], "component string, _bad boolean").collect()[0].asDict() == {
        "component": "c1",
        "_bad": True,
    }
    empty = local_frame(spark, [], "old_person_key string, records long")
    assert empty.count() == 0 and empty.schema.simpleString() == "struct<old_person_key:string,records:bigint>"


def test_a_local_frame_refuses_a_float_for_an_integer_column(spark, no_python_rdd):
    from decimal import Decimal

    import numpy as np

    from ld_spark.frames import local_frame

    schema = "estimand string, n long"
    # Arrow alone would give n = 1 for 1.5 (and 2 for 2.0) and say nothing.
    for bad in (1.5, 2.0, np.float64(1.5), True, np.True_, Decimal("1.5")):
        with pytest.raises(TypeError, match=r"row 1, column n: .*is not an integer"):
            local_frame(spark, [{"estimand": "a", "n": 3}, {"estimand": "b", "n": bad}], schema)
    kept = local_frame(spark, [("a", np.int64(7)), ("b", None)], schema).collect()
    assert [r["n"] for r in kept] == [7, None]


def test_an_arrow_frame_of_no_rows_takes_no_python_rdd_and_the_schemas_types(spark, no_python_rdd):
    import pyarrow as pa

    from ld_spark.frames import arrow_frame

    # As DuckDB can give them: large strings, a float32, columns in another order, one too many.
    table = pa.table(
        {
            "match_weight": pa.array([], pa.float32()),
            "extra": pa.array([], pa.int8()),
            "id_r": pa.array([], pa.large_string()),
            "id_l": pa.array([], pa.large_string()),
        }
    )
    schema = "id_l string, id_r string, match_weight double"
    empty = arrow_frame(spark, table, schema)
    assert empty.count() == 0
    assert empty.schema.simpleString() == "struct<id_l:string,id_r:string,match_weight:double>"
    one = pa.table({"id_l": ["r1"], "id_r": ["r2"], "match_weight": pa.array([2.5], pa.float32())})
    assert arrow_frame(spark, one, schema).collect()[0].asDict() == {"id_l": "r1", "id_r": "r2", "match_weight": 2.5}
