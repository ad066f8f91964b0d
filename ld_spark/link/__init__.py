"""Linkage: every identity-bearing record to a person, one module per step.

1. identity: each source's records in one identity layout, collapsed to distinct identity tuples.
2. deterministic: matches on strong identifiers where that is safe.
3. blocking: the comparisons each prediction rule makes, held to a budget.
   model: probabilistic (Fellegi-Sunter) matches for the rest, with Splink.
4. components: people are the connected components of both kinds of match, split where one
   would hold two NHS numbers with one date of birth (twins).
5. key: each person's person_key, a keyed HMAC of the component id (the key is passed in).
   stable: a person keeps the key an earlier run gave them; merges and splits on record.
6. events: event tables reach their person through their parent record.
7. quality: pairwise precision, recall and F1 against the generator's truth.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import NamedTuple

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ld_spark import fs
from ld_spark.config import LinkageConf
from ld_spark.link import blocking, components, deterministic, events, identity, key, model, quality, stable  # noqa: F401 (the package API)


class Linked(NamedTuple):
    record_person: DataFrame  # the identity records' (source_table, record_key, person_key)
    scored: model.Scored  # Splink's pairs (down to keep_from), its model as JSON, what was carried over
    keep_from: float  # the lowest match probability asked for (model.Earlier.keep_from)
    tuples: DataFrame  # the identity tuples scored (identity.identity_tuples), cached while the block runs
    backend: str  # where Splink scored: duckdb or spark (model.backend)
    blocking: list[dict]  # each prediction rule's comparisons and largest block (blocking.comparisons)
    records: DataFrame  # the identity records (identity.records), cached while the block runs
    # record_person with the links re-decided at each other match probability asked for
    at_threshold: dict[float, DataFrame]


@contextlib.contextmanager
def people(
    spark: SparkSession,
    bronze: dict[str, DataFrame],
    conf: LinkageConf,
    person_key: bytes,
    work_dir: fs.Location,
    model_in: fs.Location | None = None,
    thresholds: tuple[float, ...] = (),
    earlier: model.Earlier | None = None,
    keep_from: float = 1.0,
) -> Iterator[Linked]:
    """The identity records' person_keys, the Splink model, and where it scored.

    bronze: contract table -> its bronze table, for every identity source. The frames are valid
    while the block runs (they rest on cached tuples and Splink's work files): write them there.
    thresholds: other match probabilities to re-decide the links at (sensitivity analyses).
    Splink scores once, keeping the pairs down to the lowest threshold; each threshold is only
    its own connected components (found in the driver when Splink scored there, on DuckDB).
    earlier: an earlier run's scores (model.Earlier); where they are of the same model, only
    the pairs they cannot stand for are scored (model.train_and_predict).
    keep_from: keep the scored pairs down to this match probability too, if lower (for a later
    run's thresholds to use them).
    """
    pairs = None
    records = identity.records(bronze).persist(StorageLevel.MEMORY_AND_DISK)
    tuples = identity.identity_tuples(records).persist(StorageLevel.MEMORY_AND_DISK)
    fs.make_dirs(work_dir)
    try:
        counted = blocking.comparisons(tuples)
        blocking.check_budget(counted, conf.max_comparisons_per_rule)
        on = model.backend(conf, spark.sparkContext.master, tuples.count())
        lowest = min((conf.match_threshold, *thresholds, keep_from))
        scored = model.train_and_predict(
            spark, tuples, conf, work_dir, model_in=model_in, on=on, keep_from=lowest, earlier=earlier
        )
        pairs = scored.pairs.persist(StorageLevel.MEMORY_AND_DISK)
        strong = deterministic.deterministic_edges(tuples)
        graph = None
        if on == "duckdb":
            # Splink scored in the driver, so the graph is made into people there too.
            members = tuples.select(identity.UNIQUE_ID, "nhs", "dob").toPandas()
            graph = components.Graph(members, strong.toPandas(), pairs.toPandas())

        def at(threshold: float) -> DataFrame:
            return linked_at(records, tuples, strong, pairs, threshold, person_key, graph)

        others = {t: at(t) for t in thresholds}
        yield Linked(
            at(conf.match_threshold),
            scored._replace(pairs=pairs),
            lowest,
            tuples,
            on,
            counted,
            records,
            others,
        )
    finally:
        for df in (records, tuples, pairs):
            if df is not None:
                df.unpersist()
        fs.delete(work_dir)


def linked_at(
    records: DataFrame,
    tuples: DataFrame,
    strong: DataFrame,
    pairs: DataFrame,
    threshold: float,
    person_key: bytes,
    graph: components.Graph | None = None,
) -> DataFrame:
    """(source_table, record_key, person_key) with people as the connected components of the
    deterministic edges and the Splink pairs at or above the match probability `threshold`, each
    component that holds two different NHS numbers with one date of birth split in two
    (components.split_conflicts). With `graph` (the same tuples, edges and pairs, in the driver)
    the components are found there, with the same result."""
    weight = model.match_weight(threshold)
    if graph is not None:
        edges = graph.edges(weight)
        labels = components.local_components(graph.members[identity.UNIQUE_ID], edges)
        labels = components.local_split_conflicts(labels, graph.members, edges)
        keys = {c: key.hmac_hex(person_key, c) for c in labels["component"].unique()}  # key.keyed's HMAC
        keyed = records.sparkSession.createDataFrame(
            labels.assign(person_key=labels["component"].map(keys)), f"{components.SPLIT_SCHEMA}, person_key string"
        )
    else:
        kept = pairs.filter(F.col("match_weight") >= weight).select("id_l", "id_r", "match_weight")
        edges = strong.withColumn("match_weight", F.lit(math.inf)).unionByName(kept)
        found = components.connected_components(tuples.select(identity.UNIQUE_ID), edges)
        found = components.split_conflicts(found, tuples, edges)
        keyed = found.transform(key.with_person_key(person_key))
    return records.join(keyed, on=[identity.UNIQUE_ID], how="inner").select("source_table", "record_key", "person_key")
