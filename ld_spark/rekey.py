"""Bronze again for some keys: when rows come into landing (an incremental run) or go from it
(an opted-out person's, ld_spark.erase), the landed rows of every key those rows hold are
classified again, and put in place of what bronze and the quarantine held for those keys.

A row's state depends only on the rows that share its key (bronze.holding), so this leaves
bronze, the quarantine and the reconciliation as a classification of the whole landing table
would: a record resent in a later submission supersedes the earlier one, a copy of an earlier
row is a duplicate, and a key whose only other version was an erased person's row is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ld_spark import bronze, catalog, io
from ld_spark.contract import KEYS
from ld_spark.frames import union_all


class Moved(NamedTuple):
    states: dict[str, int]  # rows per state after, less before (bronze.changed_states)
    inserted: int  # bronze rows the MERGE inserted (the table's Change Data Feed)
    deleted: int  # and deleted
    newly_loaded: int  # inserted rows (by file and line) that bronze did not hold before


def quarantine_without(touched: dict[str, DataFrame]) -> Callable[[DataFrame], DataFrame]:
    """The quarantine table without the rows of the keys reclassified (touched: contract table ->
    its keys, bronze.key_values), which come back in their new states."""

    def _(quarantined: DataFrame) -> DataFrame:
        signatures = union_all(
            keys.select(F.lit(t).alias("source_table"), bronze.key_signature(t).alias("_key"))
            for t, keys in touched.items()
        )
        key = F.lit(None).cast("string")
        for table in touched:
            key = F.when(F.col("source_table") == table, bronze.quarantine_key(table)).otherwise(key)
        return quarantined.withColumn("_key", key).join(signatures, ["source_table", "_key"], "left_anti").drop("_key")

    return _


def reclassified(
    spark: SparkSession,
    out: str | Path,
    before: DataFrame,
    after: DataFrame,
    touched: dict[str, DataFrame],
    run_id: str,
    threads: int = 1,
) -> dict[str, Moved]:
    """The keys' rows in landing `after` (the landing table now) classified, each bronze table's
    rows of those keys replaced in one MERGE, and the quarantine's in one overwrite (its new rows
    with `run_id`); `before`: the landing table as the stored states were made from. touched:
    contract table -> its keys (bronze.key_values). Returns each table's Moved."""
    persisted: list[DataFrame] = []
    classified: dict[str, DataFrame] = {}

    def one(table: str) -> Moved:
        keys = touched[table].persist(StorageLevel.MEMORY_AND_DISK)
        now = io.landed(after, table).transform(bronze.holding(table, keys)).transform(bronze.classify(table))
        now = now.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.extend([keys, now])
        earlier = io.landed(before, table).transform(bronze.holding(table, keys)).transform(bronze.classify(table))
        states = bronze.changed_states(bronze.state_counts(now), bronze.state_counts(earlier))
        target = catalog.bronze(table)
        catalog.keep_changes(spark, out, target)
        version = catalog.replace_keys(spark, now.transform(bronze.typed(table)), keys, out, target, KEYS[table])
        changes = catalog.changes(spark, out, target, version).select("_change_type", io.SOURCE_FILE, io.LINE)
        changes = changes.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(changes)
        counts = dict(changes.groupBy("_change_type").count().collect())
        inserted, deleted = (
            changes.filter(F.col("_change_type") == k).drop("_change_type") for k in ("insert", "delete")
        )
        newly = inserted.exceptAll(deleted).count() if counts.get("insert") else 0
        classified[table] = now
        return Moved(states, int(counts.get("insert", 0)), int(counts.get("delete", 0)), int(newly))

    try:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            moved = dict(zip(touched, pool.map(one, list(touched))))
        if moved:
            kept = catalog.read(spark, out, catalog.QUARANTINE).transform(quarantine_without(touched))
            catalog.write(kept.unionByName(bronze.quarantine(classified, run_id)), out, catalog.QUARANTINE)
    finally:
        for df in persisted:
            df.unpersist()
    return moved
