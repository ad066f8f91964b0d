"""What every stage's functions share: the Transform type, a union of many frames, and collecting
a small frame to pandas in a fixed order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import reduce

import pandas as pd
from pyspark.sql import DataFrame

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
