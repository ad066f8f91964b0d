"""Splink-DuckDB's scored pairs into Spark: through pandas (`fetch_df`, then createDataFrame) or
through Arrow (`to_arrow_table`, then frames.arrow_frame, as ld_spark/link/model.py does).

    .venv/bin/python benchmarks/pairs_to_spark.py {pandas|arrow} N

N pairs of 32-character ids and a weight, made in DuckDB; prints the seconds to make the frame,
to make and count it, and the Python process's peak RSS before and after. One way per process,
so each peak is its own; benchmarks/results/driver_memory.md has the runs.
"""

from __future__ import annotations

import resource
import sys
import time

import duckdb
from pyspark.sql import SparkSession

from ld_spark.frames import arrow_frame
from ld_spark.link.model import PAIRS_SCHEMA


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main(way: str, n: int) -> None:
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "3g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.range(1).count()
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE p AS SELECT md5(i::VARCHAR) AS id_l, md5((i + 1)::VARCHAR) AS id_r, "
        f"random() * 20 - 5 AS match_weight FROM range({n}) t(i)"
    )
    before = peak_gib()
    started = time.time()
    if way == "pandas":
        pairs = con.execute("SELECT * FROM p").fetch_df()
        con.close()
        frame = spark.createDataFrame(pairs, PAIRS_SCHEMA)
    else:
        pairs = con.sql("SELECT * FROM p").to_arrow_table()
        con.close()
        frame = arrow_frame(spark, pairs, PAIRS_SCHEMA)
    made = time.time() - started
    rows = frame.count()
    print(
        f"{way} N={n}: made {made:.1f} s, made and counted {time.time() - started:.1f} s, rows {rows}, "
        f"Python peak RSS {before:.2f} GiB before, {peak_gib():.2f} GiB after"
    )
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
