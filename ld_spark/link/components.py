"""People as the connected components of the match graph (deterministic and probabilistic edges)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.link.identity import UNIQUE_ID


def connected_components(vertices: DataFrame, edges: DataFrame, max_iterations: int = 50) -> DataFrame:
    """(unique_id, component): each vertex labelled with the smallest id it is connected to.

    Min-label propagation; lineage is cut every round so the plan stays small.
    """
    both = (
        edges.select("id_l", "id_r")
        .unionByName(edges.select(F.col("id_r").alias("id_l"), F.col("id_l").alias("id_r")))
        .persist()
    )
    labels = vertices.select(UNIQUE_ID, F.col(UNIQUE_ID).alias("component")).localCheckpoint()
    for _ in range(max_iterations):
        offered = both.join(labels, both["id_r"] == labels[UNIQUE_ID], how="inner").select(
            F.col("id_l").alias(UNIQUE_ID), F.col("component").alias("offer")
        )
        best = offered.groupBy(UNIQUE_ID).agg(F.min("offer").alias("offer"))
        updated = (
            labels.join(best, on=[UNIQUE_ID], how="left")
            .select(
                UNIQUE_ID,
                F.least("component", F.coalesce("offer", "component")).alias("component"),
                (F.col("offer") < F.col("component")).alias("changed"),
            )
            .localCheckpoint()
        )
        labels = updated.select(UNIQUE_ID, "component")
        if updated.filter("changed").limit(1).count() == 0:
            both.unpersist()
            return labels
    both.unpersist()
    raise RuntimeError(f"connected components did not converge in {max_iterations} rounds")
