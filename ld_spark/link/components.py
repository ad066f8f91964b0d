"""People as the connected components of the match graph (deterministic and probabilistic edges),
then split where a component would hold two people that the NHS number tells apart."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.frames import local_frame
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


def conflicted(labels: DataFrame, tuples: DataFrame) -> DataFrame:
    """(component) of every component holding two different valid NHS numbers with one date of
    birth: two people, such as same-sex twins at one address, whose records without an NHS number
    (PNC, courts, NDTMS) matched both. Bronze keeps only NHS numbers that pass the mod-11 check,
    and a mistyped digit never does, so two such numbers are two people."""
    numbered = tuples.filter(F.col("nhs").isNotNull() & F.col("dob").isNotNull()).select(UNIQUE_ID, "nhs", "dob")
    return (
        labels.join(numbered, on=[UNIQUE_ID], how="inner")
        .groupBy("component", "dob")
        .agg(F.countDistinct("nhs").alias("numbers"))
        .filter(F.col("numbers") > 1)
        .select("component")
        .distinct()
    )


SPLIT_SCHEMA = f"{UNIQUE_ID} string, component string"


def split_component(members: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
    """One conflicted component's (unique_id, component), re-clustered by merging along its edges
    from the strongest down (deterministic edges first, then Splink pairs by match weight; ties by
    the ids), skipping any merge that would put two different NHS numbers with one date of birth
    in one person. Each part is labelled with its smallest id.

    members: unique_id, nhs, dob (nulls allowed); edges: id_l, id_r, match_weight (inf for a
    deterministic edge). A record matching both twins equally goes with the twin it meets first
    in that order: the model cannot tell them apart either."""
    parent = {u: u for u in members[UNIQUE_ID]}
    numbers: dict[str, dict[str, str]] = {
        u: ({d: n} if isinstance(n, str) and isinstance(d, str) else {})
        for u, n, d in zip(members[UNIQUE_ID], members["nhs"], members["dob"])
    }

    def root(u: str) -> str:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    ordered = edges.sort_values(["match_weight", "id_l", "id_r"], ascending=[False, True, True])
    for a, b in zip(ordered["id_l"], ordered["id_r"]):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        na, nb = numbers[ra], numbers[rb]
        if any(na[d] != n for d, n in nb.items() if d in na):
            continue  # would hold two NHS numbers with one date of birth: two people
        keep, gone = min(ra, rb), max(ra, rb)
        parent[gone] = keep
        numbers[keep] = {**na, **nb}
    labels = {u: root(u) for u in parent}
    smallest: dict[str, str] = {}
    for u, r in labels.items():
        smallest[r] = min(smallest.get(r, u), u)
    return pd.DataFrame({UNIQUE_ID: list(labels), "component": [smallest[r] for r in labels.values()]})


def split_conflicts(labels: DataFrame, tuples: DataFrame, edges: DataFrame) -> DataFrame:
    """labels (unique_id, component) with every conflicted component (conflicted()) re-clustered
    by split_component; the rest unchanged. edges: id_l, id_r, match_weight (inf: deterministic).

    Conflicted components are few and small (a few per thousand people), so each is re-clustered
    in one pandas task (applyInPandas by component) on the executors."""
    # One small job: the conflicted components' ids (a few per thousand people) to the driver.
    bad = [r["component"] for r in conflicted(labels, tuples).collect()]
    if not bad:
        return labels  # the usual case on a small extract: no Python task to start
    spark = labels.sparkSession
    flagged = labels.join(
        F.broadcast(local_frame(spark, [(c, True) for c in bad], "component string, _bad boolean")),
        on=["component"],
        how="left",
    )
    members = flagged.filter("_bad").join(tuples.select(UNIQUE_ID, "nhs", "dob"), on=[UNIQUE_ID], how="inner")
    # Its own component column (a new alias), so that the cogroup below does not meet the
    # members' column twice.
    ends = members.select(F.col(UNIQUE_ID).alias("id_l"), F.col("component").alias("_component"))
    inside = edges.join(ends, on=["id_l"], how="inner").select(
        F.col("_component").alias("component"), "id_l", "id_r", "match_weight"
    )

    def split(key: tuple, parts: pd.DataFrame) -> pd.DataFrame:
        return split_component(parts[parts["_kind"] == "member"], parts[parts["_kind"] == "edge"])

    # Members and edges as rows of one frame (each padded with the other's columns), so that one
    # grouped pandas call sees both: a cogroup does the same with two shuffles, and took the
    # tests' hand-made cases 12.8/18.4 s -> 21.1/28.5 s.
    edge_columns = (("id_l", "string"), ("id_r", "string"), ("match_weight", "double"))
    both = members.select(
        "component",
        F.lit("member").alias("_kind"),
        UNIQUE_ID,
        "nhs",
        "dob",
        *[F.lit(None).cast(t).alias(c) for c, t in edge_columns],
    ).unionByName(
        inside.select(
            "component",
            F.lit("edge").alias("_kind"),
            *[F.lit(None).cast("string").alias(c) for c in (UNIQUE_ID, "nhs", "dob")],
            *[c for c, _ in edge_columns],
        )
    )
    resplit = both.groupBy("component").applyInPandas(split, SPLIT_SCHEMA)
    return flagged.filter(F.col("_bad").isNull()).select(UNIQUE_ID, "component").unionByName(resplit)


# The same people in the driver, where Splink scored on the embedded DuckDB (the tuples fit in
# its memory, and so does their graph). The Spark version above runs a few jobs per round of
# label propagation: a threshold's people, keyed and collected, took 21-25 s at scale 1 that way
# and 6-8 s this way. Both label each vertex with the smallest id it is connected to (Spark and
# Python order strings alike, by code point) and split conflicted components with
# split_component, so they give the same people.


class Graph(NamedTuple):
    """The match graph in the driver: every tuple's (unique_id, nhs, dob), the deterministic
    edges (id_l, id_r) and the scored pairs (id_l, id_r, match_weight) down to the lowest threshold."""

    members: pd.DataFrame
    strong: pd.DataFrame
    pairs: pd.DataFrame

    def edges(self, min_weight: float) -> pd.DataFrame:
        """id_l, id_r, match_weight: the deterministic edges (weight inf) and the pairs at or above min_weight."""
        kept = self.pairs[self.pairs["match_weight"] >= min_weight]
        strong = self.strong[["id_l", "id_r"]].assign(match_weight=np.inf)
        return pd.concat([strong, kept[["id_l", "id_r", "match_weight"]]], ignore_index=True)


def local_components(ids: pd.Series, edges: pd.DataFrame) -> pd.DataFrame:
    """connected_components in the driver: (unique_id, component), the component being the
    smallest id connected to the vertex (scipy's connected components on the sparse graph)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    vertices = pd.Index(np.sort(ids.unique()))  # position order is id order
    ends = [vertices.get_indexer(edges[side]) for side in ("id_l", "id_r")]
    if any((end < 0).any() for end in ends):
        raise ValueError("an edge names a unique_id that is not a vertex")
    n = len(vertices)
    graph = coo_matrix((np.ones(len(edges), dtype=bool), (ends[0], ends[1])), shape=(n, n))
    _, label = scipy_components(graph, directed=False)
    smallest = np.full(label.max() + 1 if n else 0, n)
    np.minimum.at(smallest, label, np.arange(n))
    return pd.DataFrame({UNIQUE_ID: vertices.to_numpy(), "component": vertices.to_numpy()[smallest[label]]})


def local_split_conflicts(labels: pd.DataFrame, members: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
    """split_conflicts in the driver: labels with every component holding two different valid
    NHS numbers with one date of birth (conflicted()) re-clustered by split_component."""
    labelled = labels.merge(members, on=[UNIQUE_ID], how="inner")
    numbered = labelled[labelled["nhs"].notna() & labelled["dob"].notna()]
    numbers = numbered.groupby(["component", "dob"])["nhs"].nunique()
    bad = set(numbers[numbers > 1].index.get_level_values("component"))
    if not bad:
        return labels
    inside = labelled[labelled["component"].isin(bad)]
    component_of = inside.set_index(UNIQUE_ID)["component"]
    touching = edges[edges["id_l"].isin(component_of.index)]
    touching = touching.assign(component=component_of.reindex(touching["id_l"]).to_numpy())
    edges_of = dict(tuple(touching.groupby("component")))
    parts = [
        split_component(group[[UNIQUE_ID, "nhs", "dob"]], edges_of.get(component, touching.iloc[:0]))
        for component, group in inside.groupby("component")
    ]
    return pd.concat([labels[~labels["component"].isin(bad)], *parts], ignore_index=True)
