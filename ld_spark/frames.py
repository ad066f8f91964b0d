"""What every stage's functions share: the Transform type and a union of many frames."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import reduce

from pyspark.sql import DataFrame

# A stage step: DataFrame in, DataFrame out, for `df.transform(step)`.
Transform = Callable[[DataFrame], DataFrame]


def union_all(frames: Iterable[DataFrame]) -> DataFrame:
    """The frames' rows together, columns matched by name."""
    return reduce(DataFrame.unionByName, frames)
