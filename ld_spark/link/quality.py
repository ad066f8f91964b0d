"""Linkage quality against the generator's truth: pairwise precision, recall and F1 per source."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.link.identity import SOURCES

QUALITY_COLUMNS = ["source_table", "n_records", "n_persons", "precision", "recall", "f1"]


def quality_cells(record_person: DataFrame, truth: DataFrame) -> DataFrame:
    """Records per (source_table, person_key found, true person): all pairwise_quality needs."""
    # A truth file may list a record once per row it appeared in (MPI submissions); one is enough.
    truth = truth.select("source_table", "record_key", F.col("person_id").alias("true_person")).distinct()
    return (
        record_person.join(truth, on=["source_table", "record_key"], how="inner")
        .groupBy("source_table", "person_key", "true_person")
        .agg(F.count("*").alias("n_t"))
    )


def pairwise_quality(cells: DataFrame) -> DataFrame:
    """Per source table: records, people found, and pairwise precision/recall/F1 of "same person".

    cells: quality_cells(record_person, truth). For a table T the pairs judged are every pair of
    records with at least one in T (the other in any table), so a table is scored on both its
    within-source and its cross-source links. Counts come from cluster sizes, never from
    materialising the pairs.
    """

    def pairs(cols: list[str], name: str) -> DataFrame:
        per_table = cells.groupBy(*cols, "source_table").agg(F.sum("n_t").alias("n_t"))
        total = per_table.groupBy(*cols).agg(F.sum("n_t").alias("n"))
        return (
            per_table.join(total, on=cols, how="inner")
            .withColumn(name, F.col("n_t") * (F.col("n") - F.col("n_t")) + F.col("n_t") * (F.col("n_t") - 1) / 2)
            .groupBy("source_table")
            .agg(F.sum(name).alias(name))
        )

    counts = cells.groupBy("source_table").agg(
        F.sum("n_t").alias("n_records"), F.countDistinct("person_key").alias("n_persons")
    )
    q = (
        counts.join(pairs(["person_key"], "predicted"), on=["source_table"], how="left")
        .join(pairs(["true_person"], "actual"), on=["source_table"], how="left")
        .join(pairs(["person_key", "true_person"], "correct"), on=["source_table"], how="left")
        .fillna(0, ["predicted", "actual", "correct"])
    )
    # try_divide: null, not an error, where a table has no pairs (or precision + recall is 0).
    return (
        q.withColumn("precision", F.try_divide(F.col("correct"), F.col("predicted")))
        .withColumn("recall", F.try_divide(F.col("correct"), F.col("actual")))
        .withColumn("f1", F.try_divide(2 * F.col("precision") * F.col("recall"), F.col("precision") + F.col("recall")))
        .select("source_table", "n_records", "n_persons", "precision", "recall", "f1")
    )


def quality_rows(record_person: DataFrame, truth: DataFrame | None) -> list[dict]:
    """The rows of results/linkage_quality.csv (contract section 6), one per identity source;
    precision/recall/F1 blank without truth."""
    if truth is not None:
        cells = quality_cells(record_person, truth).persist()
        rows = {r["source_table"]: r.asDict() for r in pairwise_quality(cells).collect()}
        cells.unpersist()
    else:
        counted = record_person.groupBy("source_table").agg(
            F.count("*").alias("n_records"), F.countDistinct("person_key").alias("n_persons")
        )
        rows = {
            r["source_table"]: {**r.asDict(), "precision": None, "recall": None, "f1": None} for r in counted.collect()
        }
    out = []
    for source in SOURCES:
        r = rows.get(source, {"n_records": 0, "n_persons": 0, "precision": None, "recall": None, "f1": None})
        out.append(
            {
                "source_table": source,
                "n_records": r["n_records"],
                "n_persons": r["n_persons"],
                **{m: None if r[m] is None else round(r[m], 4) for m in ("precision", "recall", "f1")},
            }
        )
    return out
