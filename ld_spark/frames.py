"""What every stage's functions share: the Transform type, a union of many frames, collecting a
small frame to pandas in a fixed order, and making a frame of the driver's rows or Arrow table."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from functools import reduce

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

# A stage step: DataFrame in, DataFrame out, for `df.transform(step)`.
Transform = Callable[[DataFrame], DataFrame]


def union_all(frames: Iterable[DataFrame]) -> DataFrame:
    """The frames' rows together, columns matched by name."""
    return reduce(DataFrame.unionByName, frames)


def collected(df: DataFrame) -> pd.DataFrame:
    """toPandas in a fixed row order (by every column, left to right).

    Spark returns rows in an order that depends on how the input files were cut; iterative fits
    and sums over them then differ in the last bits between two runs on the same data. Sorted,
    a rerun gives the same numbers exactly (the rerun test compares the estimates table bit for bit).
    """
    frame = df.toPandas()
    return frame.sort_values(list(frame.columns), kind="mergesort", na_position="last").reset_index(drop=True)


def local_frame(spark: SparkSession, rows: Iterable[dict | tuple], schema: str | T.StructType) -> DataFrame:
    """A small frame of the driver's rows (dicts by column name, or tuples in the schema's order),
    through Arrow. Given a Python list, createDataFrame goes through a Python RDD: that starts
    pyspark's daemon and a worker per core (about 0.1 GiB each, kept a minute after). Arrow starts
    none, keeps a NaN apart from a null as the list does, and is the same for no rows. Arrow would
    cut a float given for an integer column (1.5 to 1) without a word; the list path refused it,
    and so does this (for top-level columns: no caller has an array or struct of integers)."""
    struct = T.StructType.fromDDL(schema) if isinstance(schema, str) else schema
    names = struct.fieldNames()
    records = [r if isinstance(r, dict) else dict(zip(names, r, strict=True)) for r in rows]
    integral = [f.name for f in struct.fields if isinstance(f.dataType, T.IntegralType)]
    for i, record in enumerate(records):
        for name in integral:
            value = record.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise TypeError(f"local_frame: row {i}, column {name}: {value!r} is not an integer")
    return arrow_frame(spark, pa.Table.from_pylist(records, schema=to_arrow_schema(struct)), struct)


def arrow_frame(spark: SparkSession, table: pa.Table, schema: str | T.StructType) -> DataFrame:
    """A frame of an Arrow table held by the driver, cast to `schema` (its columns by name).
    A pandas frame with no rows goes through a Python RDD (as a list does, local_frame); Arrow does
    not, whatever the row count."""
    struct = T.StructType.fromDDL(schema) if isinstance(schema, str) else schema
    return spark.createDataFrame(table.select(struct.fieldNames()).cast(to_arrow_schema(struct)))
