"""The cohorts' offences with a disposal, and their court cases, placed around each index.

Both tables carry cohort, rel_month (of the offence date, the same clock as the offending series)
and period (pre -12..-1, post 0..+11 by default), so the custody, sentence-length and court
timeliness contrasts of contract section 4 are simple aggregates of them.
"""
from __future__ import annotations

from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.series import in_window, with_period, with_rel_month

Transform = Callable[[DataFrame], DataFrame]

CUSTODIAL = ("1002", "1024", "1081")                         # imprisonment, YOI, DTO
NON_CUSTODIAL = ("1115", "1116", "1015", "1018", "1019")     # suspended, community, fine, discharges
# 2050 dismissed and 2063 withdrawn are disposals without a conviction.

# No dates: the analysis layer keeps months relative to the index and intervals in days.
OFFENCE_COLUMNS = ["person_key", "cohort", "in_outcomes", "rel_month", "period", "offence_category", "disposal_code",
                   "sentenced", "custodial", "custodial_days"]
CASE_COLUMNS = ["person_key", "cohort", "in_outcomes", "rel_month", "period", "source_system", "case_outcome",
                "completed", "duration_days", "hearings", "adjournments", "arrest_to_sentence_days"]


def _around_index(cohorts: DataFrame, series: tuple[int, int], pre: tuple[int, int], post: tuple[int, int]) -> Transform:
    """Rows with person_key and offence_date -> one row per cohort membership, within the series.

    cohorts: person_key, cohort, index_date, in_outcomes (one row per person and cohort).
    """
    index = F.broadcast(cohorts.select("person_key", "cohort", "index_date", "in_outcomes"))

    def _(df: DataFrame) -> DataFrame:
        # A person in both cohorts has each offence placed against each index, on purpose.
        return (df.join(index, on="person_key", how="inner")
                .transform(with_rel_month("index_date", "offence_date"))
                .transform(in_window(*series))
                .transform(with_period(pre, post)))
    return _


def cohort_offences(cohorts: DataFrame, series: tuple[int, int], pre: tuple[int, int],
                    post: tuple[int, int]) -> Transform:
    """Linked PNC offences (person_key + bronze columns) -> the cohorts' offences with a disposal."""
    def _(offences: DataFrame) -> DataFrame:
        code = F.col("disposal_code")
        custodial = code.isin(*CUSTODIAL)
        return (offences.filter(code.isNotNull() & F.col("offence_date").isNotNull())
                .transform(_around_index(cohorts, series, pre, post))
                .withColumn("sentenced", custodial | code.isin(*NON_CUSTODIAL))
                .withColumn("custodial", custodial)
                .withColumn("custodial_days", F.when(custodial, F.col("custodial_days")))
                .select(*OFFENCE_COLUMNS))
    return _


def hearing_counts(hearings: DataFrame) -> DataFrame:
    """Bronze hearings -> case_id, hearings, adjournments."""
    return hearings.groupBy("case_id").agg(
        F.count("*").alias("hearings"),
        F.sum(F.when(F.col("adjourned"), 1).otherwise(0)).alias("adjournments"))


def arrest_dates(offences: DataFrame) -> DataFrame:
    """Linked PNC offences -> person_key, offence_date, charge_date, arrest_date (one row per key).

    A court case names its offence and charge dates but not the arrest; the PNC offence with the
    same person and dates gives it (the earliest arrest if two offences share the dates).
    """
    return (offences.filter(F.col("offence_date").isNotNull() & F.col("charge_date").isNotNull())
            .groupBy("person_key", "offence_date", "charge_date").agg(F.min("arrest_date").alias("arrest_date")))


def cohort_cases(cohorts: DataFrame, hearings: DataFrame, arrests: DataFrame, series: tuple[int, int],
                 pre: tuple[int, int], post: tuple[int, int]) -> Transform:
    """Linked HMCTS cases (person_key + bronze columns) -> the cohorts' cases with their timeliness.

    hearings: hearing_counts(); arrests: arrest_dates(); both unique on their join keys.
    """
    def _(cases: DataFrame) -> DataFrame:
        return (cases.filter(F.col("offence_date").isNotNull())
                .join(hearings, on="case_id", how="left")
                .join(arrests, on=["person_key", "offence_date", "charge_date"], how="left")
                .transform(_around_index(cohorts, series, pre, post))
                .withColumn("completed", F.col("completion_date").isNotNull())
                .withColumn("duration_days", F.datediff("completion_date", "first_hearing_date"))
                .withColumn("hearings", F.coalesce("hearings", F.lit(0)))
                .withColumn("adjournments", F.coalesce("adjournments", F.lit(0)))
                .withColumn("arrest_to_sentence_days", F.datediff("sentence_date", "arrest_date"))
                .select(*CASE_COLUMNS))
    return _
