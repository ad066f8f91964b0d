"""Deterministic matches on strong identifiers, where that is safe: a valid NHS number with the
same date of birth (a number alone is sometimes shared by two people), a PNC ID, an NDTMS client
id within its agency."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.frames import union_all
from ld_spark.link.identity import UNIQUE_ID


def deterministic_edges(tuples: DataFrame) -> DataFrame:
    """(unique_id, other unique_id) for tuples sharing a strong identifier, as stars on the
    smallest id of each group, so the edge count grows with the tuples, not their square."""
    groups = [("nhs", "dob"), ("pnc",), ("client",)]
    edges = []
    for keys in groups:
        present = tuples.dropna(subset=list(keys))
        roots = present.groupBy(*keys).agg(F.min(UNIQUE_ID).alias("root"))
        edges.append(
            present.join(roots, on=list(keys), how="inner")
            .select(F.col(UNIQUE_ID).alias("id_l"), F.col("root").alias("id_r"))
            .filter(F.col("id_l") != F.col("id_r"))
        )
    return union_all(edges).distinct()
