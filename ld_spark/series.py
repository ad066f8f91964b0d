"""Monthly per-person event series around index dates (the start of issue 4's stage).

Months are calendar months relative to the index month (rel_month 0 = the index month), as
contract section 3 defines them; series run from -24 to +12.
"""
from __future__ import annotations

from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

Transform = Callable[[DataFrame], DataFrame]


def month_number(c: str | Column) -> Column:
    column = F.col(c) if isinstance(c, str) else c
    return F.year(column) * 12 + F.month(column)


def with_rel_month(index_col: str, event_col: str) -> Transform:
    """rel_month = calendar months from the index month to the event month."""
    def _(df: DataFrame) -> DataFrame:
        return df.withColumn("rel_month", month_number(event_col) - month_number(index_col))
    return _


def in_window(first: int, last: int) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        return df.filter(F.col("rel_month").between(first, last))
    return _


def person_month_panel(index: DataFrame, events: DataFrame, outcomes: list[str], first: int, last: int) -> DataFrame:
    """One row per person x cohort x rel_month in [first, last], zeros included.

    index:  person_key, cohort, index_date (one row per person and cohort).
    events: person_key, outcome, event_date (one row per event).
    Returns person_key, cohort, rel_month and one count column per outcome.
    """
    months = index.sparkSession.range(first, last + 1).select(F.col("id").cast("int").alias("rel_month"))
    grid = index.select("person_key", "cohort").crossJoin(F.broadcast(months))
    counted = (events.join(index, on="person_key", how="inner")
               .transform(with_rel_month("index_date", "event_date"))
               .transform(in_window(first, last))
               .groupBy("person_key", "cohort", "rel_month")
               .pivot("outcome", outcomes).count())
    panel = grid.join(counted, on=["person_key", "cohort", "rel_month"], how="left")
    return panel.select("person_key", "cohort", "rel_month",
                        *[F.coalesce(F.col(o), F.lit(0)).cast("long").alias(o) for o in outcomes])
