"""Stable person keys: a person keeps the person_key an earlier run gave them.

A run's own keys are HMACs of each person's component id (its smallest identity tuple), so a
new record with a smaller tuple would change a person's key from one monthly run to the next.
Here each person of this run is matched with the people of the previous run by the records they
share. A person keeps the earlier key when each is the other's best match (most records shared;
ties go to the smaller key). Everyone else gets this run's key, except that a key the previous
run gave to someone else is never handed on: that person's key is salted with the run id.

What moved is recorded, so a user holding last month's keys can follow them (CHANGE_COLUMNS):
- merged:  all of an earlier person's records are now in a person under another key;
- split:   an earlier person's records are now in more than one person (a row for each part
           that did not keep the key);
- removed: none of an earlier person's records is linked any more (erased, or withdrawn).
"""

from __future__ import annotations

from typing import NamedTuple

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ld_spark.frames import local_frame
from ld_spark.link.key import keyed

CHANGE_COLUMNS = ["old_person_key", "person_key", "change", "records", "run_id"]
MERGED, SPLIT, REMOVED = "merged", "split", "removed"
RECORD = ["source_table", "record_key"]


class Carried(NamedTuple):
    record_person: DataFrame  # (source_table, record_key, person_key) with earlier keys kept
    changes: DataFrame  # CHANGE_COLUMNS: the earlier keys that did not carry over, and why


def carried(fresh: DataFrame, previous: DataFrame | None, key: bytes, run_id: str) -> Carried:
    """fresh: this run's (source_table, record_key, person_key); previous: the last run's, or None
    on a first run (then nothing changes and nothing is recorded)."""
    fresh = fresh.select(*RECORD, "person_key")
    if previous is None:
        empty = local_frame(
            fresh.sparkSession,
            [],
            "old_person_key string, person_key string, change string, records long, run_id string",
        )
        return Carried(fresh, empty)
    old = previous.select(*RECORD, F.col("person_key").alias("old"))
    both = fresh.withColumnRenamed("person_key", "new").join(old, on=RECORD, how="left")
    shared = both.filter(F.col("old").isNotNull()).groupBy("new", "old").agg(F.count(F.lit(1)).alias("records"))

    def best(partition: str, other: str):
        order = Window.partitionBy(partition).orderBy(F.desc("records"), F.asc(other))
        return F.row_number().over(order.rowsBetween(Window.unboundedPreceding, Window.currentRow)) == 1

    ranked = shared.withColumn("best_for_new", best("new", "old")).withColumn("best_for_old", best("old", "new"))
    kept = ranked.filter("best_for_new AND best_for_old").select("new", F.col("old").alias("kept"))
    earlier_keys = old.select(F.col("old").alias("taken")).distinct()
    matched = (
        fresh.select(F.col("person_key").alias("new"))
        .distinct()
        .join(kept, on="new", how="left")
        .join(earlier_keys, on=F.col("new") == F.col("taken"), how="left")
    )
    # Only the few that need it go through the (Python) HMAC.
    clash = F.col("kept").isNull() & F.col("taken").isNotNull()
    people = (
        matched.filter(~clash)
        .select("new", "kept", F.coalesce("kept", "new").alias("person_key"))
        .unionByName(
            matched.filter(clash).select(
                "new", "kept", keyed(key)(F.concat(F.col("new"), F.lit("\u001f" + run_id))).alias("person_key")
            )
        )
    )
    record_person = (
        fresh.withColumnRenamed("person_key", "new")
        .join(people.select("new", "person_key"), on="new", how="inner")
        .select(*RECORD, "person_key")
    )
    kept_keys = people.filter(F.col("kept").isNotNull()).select(F.col("kept").alias("old"), F.lit(True).alias("kept"))
    parts = Window.partitionBy("old").rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    moved = (
        shared.join(people.select("new", "person_key"), on="new", how="inner")
        .withColumn("parts", F.count(F.lit(1)).over(parts))
        .join(kept_keys, on="old", how="left")
        .filter(F.col("old") != F.col("person_key"))
        .select(
            F.col("old").alias("old_person_key"),
            "person_key",
            F.when(F.coalesce(F.col("kept"), F.lit(False)) | (F.col("parts") > 1), F.lit(SPLIT))
            .otherwise(F.lit(MERGED))
            .alias("change"),
            "records",
        )
    )
    gone = (
        old.select("old")
        .distinct()
        .join(shared.select("old").distinct(), on="old", how="left_anti")
        .select(
            F.col("old").alias("old_person_key"),
            F.lit(None).cast("string").alias("person_key"),
            F.lit(REMOVED).alias("change"),
            F.lit(0).cast("long").alias("records"),
        )
    )
    changes = moved.unionByName(gone).withColumn("run_id", F.lit(run_id)).select(*CHANGE_COLUMNS)
    return Carried(record_person, changes)
