"""Linkage quality against the generator's truth: pairwise precision, recall and F1 per source."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.frames import union_all
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


def pairwise_quality(cells: DataFrame, by: tuple[str, ...] = ()) -> DataFrame:
    """Per source table: records, people found, and pairwise precision/recall/F1 of "same person".

    cells: quality_cells(record_person, truth). For a table T the pairs judged are every pair of
    records with at least one in T (the other in any table), so a table is scored on both its
    within-source and its cross-source links. Counts come from cluster sizes, never from
    materialising the pairs. `by`: columns of cells that split it into separate universes
    (cohort and period), each scored on its own.
    """

    group = [*by, "source_table"]

    def pairs(cols: list[str], name: str) -> DataFrame:
        per_table = cells.groupBy(*by, *cols, "source_table").agg(F.sum("n_t").alias("n_t"))
        total = per_table.groupBy(*by, *cols).agg(F.sum("n_t").alias("n"))
        return (
            per_table.join(total, on=[*by, *cols], how="inner")
            .withColumn(name, F.col("n_t") * (F.col("n") - F.col("n_t")) + F.col("n_t") * (F.col("n_t") - 1) / 2)
            .groupBy(*group)
            .agg(F.sum(name).alias(name))
        )

    counts = cells.groupBy(*group).agg(
        F.sum("n_t").alias("n_records"), F.countDistinct("person_key").alias("n_persons")
    )
    q = (
        counts.join(pairs(["person_key"], "predicted"), on=group, how="left")
        .join(pairs(["true_person"], "actual"), on=group, how="left")
        .join(pairs(["person_key", "true_person"], "correct"), on=group, how="left")
        .fillna(0, ["predicted", "actual", "correct"])
    )
    # try_divide: null, not an error, where a table has no pairs (or precision + recall is 0).
    return (
        q.withColumn("precision", F.try_divide(F.col("correct"), F.col("predicted")))
        .withColumn("recall", F.try_divide(F.col("correct"), F.col("actual")))
        .withColumn("f1", F.try_divide(2 * F.col("precision") * F.col("recall"), F.col("precision") + F.col("recall")))
        .select(*group, "n_records", "n_persons", "precision", "recall", "f1")
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


# The dated identity sources: the date that places a record in a cohort's period. MPI records
# (MHSDS, IAPT) carry no event date and are scored in neither period.
RECORD_DATES = {
    "ld_referrals": "referral_date",
    "hes_ae": "ARRIVALDATE",
    "ndtms.episodes": "REFLD",
    "pnc.offences": "coalesce(offence_date, arrest_date)",
    "hmcts.cases": "coalesce(first_hearing_date, charge_date, offence_date)",
}
COHORT_QUALITY_COLUMNS = ["cohort", "period", *QUALITY_COLUMNS]


def record_dates(bronze: dict[str, DataFrame]) -> DataFrame:
    """(source_table, record_key, record_date) of every dated identity record
    (bronze: contract table -> its bronze table)."""
    parts = [
        bronze[SOURCES[source][0]].select(
            F.lit(source).alias("source_table"),
            F.expr(SOURCES[source][1]).alias("record_key"),
            F.expr(date).cast("date").alias("record_date"),
        )
        for source, date in RECORD_DATES.items()
    ]
    return union_all(parts).filter(F.col("record_date").isNotNull())


def cohort_quality_rows(
    record_person: DataFrame,
    truth: DataFrame,
    cohort_index: DataFrame,
    dates: DataFrame,
    pre: tuple[int, int],
    post: tuple[int, int],
) -> list[dict]:
    """Linkage quality per cohort and period (GUILD: missed links that differ between the 2013/14
    and the 2017 records bias a before/after contrast). The universe of a cohort x period is every
    dated identity record in that period of a cohort member's index, the member being the person
    found (precision: records wrongly pulled in) or any true person among the member's records
    (recall: records of theirs left out); pairwise precision, recall and F1 within it, per source.

    cohort_index: person_key, cohort, index_date; dates: record_dates().
    """
    truth = truth.select("source_table", "record_key", F.col("person_id").alias("true_person")).distinct()
    labelled = record_person.join(truth, on=["source_table", "record_key"], how="inner").join(
        dates, on=["source_table", "record_key"], how="inner"
    )
    members = cohort_index.select("person_key", "cohort", "index_date")
    true_members = (
        labelled.join(members, on=["person_key"], how="inner").select("true_person", "cohort", "index_date").distinct()
    )
    rel = F.year("record_date") * 12 + F.month("record_date") - (F.year("index_date") * 12 + F.month("index_date"))
    period = F.when(rel.between(*pre), F.lit("pre")).when(rel.between(*post), F.lit("post"))
    found = labelled.join(members, on=["person_key"], how="inner")
    truly = labelled.join(true_members, on=["true_person"], how="inner")
    keys = ["source_table", "record_key", "person_key", "true_person", "cohort"]
    universe = (
        found.select(*keys, "record_date", "index_date")
        .unionByName(truly.select(*keys, "record_date", "index_date"))
        .withColumn("period", period)
        .filter(F.col("period").isNotNull())
        .select(*keys, "period")
        .distinct()
    )
    # Kept: pairwise_quality reads the cells four times, and each read would otherwise redo the
    # universe's joins from the truth file and five bronze tables.
    cells = (
        universe.groupBy("cohort", "period", "source_table", "person_key", "true_person")
        .agg(F.count("*").alias("n_t"))
        .persist()
    )
    try:
        rows = pairwise_quality(cells, by=("cohort", "period")).collect()
    finally:
        cells.unpersist()
    order = {source: i for i, source in enumerate(SOURCES)}
    return [
        {
            **{k: r[k] for k in ("cohort", "period", "source_table", "n_records", "n_persons")},
            **{m: None if r[m] is None else round(r[m], 4) for m in ("precision", "recall", "f1")},
        }
        for r in sorted(rows, key=lambda r: (r["cohort"], r["period"] != "pre", order.get(r["source_table"], 99)))
    ]
