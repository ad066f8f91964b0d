"""The evaluation cohort and the historic control (contract section 3).

- Evaluation cohort: people with a consenting L&D referral dated in the evaluation window,
  followed up for at least `min_follow_up_months`; index = `index_offence_date` of their first
  such referral.
- Historic control: members of the evaluation cohort with an offence charged in the historic
  window (FY 2013/14); index = `arrest_date` of the first such offence.
"""

from __future__ import annotations

import datetime as dt
import statistics

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ld_spark.config import AnalysisConf
from ld_spark.contract import HEALTH_SOURCES, VULNERABILITIES, source_name, source_of
from ld_spark.frames import Transform

EVALUATION, HISTORIC = "evaluation", "historic"
REFERRAL_COLUMNS = [
    "person_key",
    "site_code",
    "referral_date",
    "index_offence_date",
    "point_of_contact",
    "pathway",
    "consent",
    "declined",
    *[f"vuln_{v}" for v in VULNERABILITIES],
    "mh_needs",
    "onward_referrals",
]


def referrals(record_person: DataFrame) -> Transform:
    """Bronze ld_referrals -> the analysis-layer referral table: person_key instead of identity."""
    keys = record_person.filter(F.col("source_table") == source_name("ld_referrals")).select(
        F.col("record_key").alias("referral_id"), "person_key"
    )

    def _(bronze: DataFrame) -> DataFrame:
        # record_person holds one row per referral_id, so this join cannot fan out.
        return bronze.join(keys, on=["referral_id"], how="inner").select(*REFERRAL_COLUMNS)

    return _


def _first_per_person(order: list[str]) -> Transform:
    """Keep each person's first row by `order` (ties broken by every column named)."""

    def _(df: DataFrame) -> DataFrame:
        w = Window.partitionBy("person_key").orderBy(*order).rowsBetween(Window.unboundedPreceding, Window.currentRow)
        return df.withColumn("_n", F.row_number().over(w)).filter(F.col("_n") == 1).drop("_n")

    return _


def referred_in_window(window: tuple[dt.date, dt.date]) -> Transform:
    """Everyone referred in the window, consenting or not: one row, their first referral there."""

    def _(refs: DataFrame) -> DataFrame:
        return refs.filter(F.col("referral_date").between(F.lit(window[0]), F.lit(window[1]))).transform(
            _first_per_person(["referral_date", "index_offence_date", "site_code"])
        )

    return _


def indexing_referrals(window: tuple[dt.date, dt.date]) -> Transform:
    """Referral table -> each person's first consenting referral in the window with an index offence date."""

    def _(refs: DataFrame) -> DataFrame:
        consenting = refs.filter(F.col("consent") & F.col("index_offence_date").isNotNull())
        return consenting.transform(referred_in_window(window))

    return _


def evaluation_cohort(window: tuple[dt.date, dt.date], follow_up_end: dt.date, min_follow_up_months: int) -> Transform:
    """Referral table -> person_key, cohort, index_date, site_code, declined (one row a person)."""

    def _(refs: DataFrame) -> DataFrame:
        first = refs.transform(indexing_referrals(window))
        followed = first.filter(F.add_months("index_offence_date", min_follow_up_months) <= F.lit(follow_up_end))
        return followed.select(
            "person_key",
            F.lit(EVALUATION).alias("cohort"),
            F.col("index_offence_date").alias("index_date"),
            "site_code",
            "declined",
        )

    return _


def historic_control(window: tuple[dt.date, dt.date], offences: DataFrame) -> Transform:
    """Evaluation cohort -> its members charged in the historic window, indexed on that arrest.

    offences: person_key, arrest_date, charge_date (every linked PNC offence).
    """
    charged = (
        offences.filter(
            F.col("charge_date").between(F.lit(window[0]), F.lit(window[1])) & F.col("arrest_date").isNotNull()
        )
        .groupBy("person_key")
        .agg(F.min("arrest_date").alias("index_date"))
    )

    def _(evaluation: DataFrame) -> DataFrame:
        return (
            evaluation.drop("index_date")
            .join(charged, on=["person_key"], how="inner")
            .select("person_key", F.lit(HISTORIC).alias("cohort"), "index_date", "site_code", "declined")
        )

    return _


# What the referral that made a person's index says about them: subgroups and vulnerabilities.
MEMBER_ATTRIBUTES = ["pathway", "point_of_contact", *[f"vuln_{v}" for v in VULNERABILITIES]]


def with_attributes(refs: DataFrame, window: tuple[dt.date, dt.date]) -> Transform:
    """Cohort rows + MEMBER_ATTRIBUTES of the person's indexing referral (both cohorts alike);
    a missing vulnerability flag is read as not recorded (False)."""
    attributes = refs.transform(indexing_referrals(window)).select(
        "person_key",
        "pathway",
        "point_of_contact",
        *[F.coalesce(F.col(f"vuln_{v}"), F.lit(False)).alias(f"vuln_{v}") for v in VULNERABILITIES],
    )

    def _(cohorts: DataFrame) -> DataFrame:
        return cohorts.join(attributes, on=["person_key"], how="left")

    return _


def declined() -> Column:
    """Whether a referral was declined; a blank `declined` is read as "not recorded as declined"."""
    return F.coalesce(F.col("declined"), F.lit(False))


def cohorts(evaluation: DataFrame, historic: DataFrame, declined_in_outcomes: bool) -> DataFrame:
    """Both cohorts in one table; `in_outcomes` marks who enters the outcome analysis."""
    both = evaluation.unionByName(historic.select(*evaluation.columns))
    in_outcomes = F.lit(True) if declined_in_outcomes else ~declined()
    return both.withColumn("in_outcomes", in_outcomes)


def dates_as_months(df: DataFrame) -> DataFrame:
    """Every date column `x_date` -> `x_month` ('yyyy-MM'): what the analysis layer may hold.

    Exact dates stay in the linkage layer; a month is all the analysis needs (months relative to
    the index month), and a day-exact date is a quasi-identifier.
    """
    out = df
    for name, kind in df.dtypes:
        if kind == "date":
            month = name[: -len("_date")] + "_month" if name.endswith("_date") else name + "_month"
            out = out.withColumn(name, F.date_format(name, "yyyy-MM")).withColumnRenamed(name, month)
    return out


# The dense date of each source that says how far it reaches (L&D referrals only cover their
# own windows, so they do not say where the follow-up ends).
EXTRACT_DATES = {
    "hes_ae": "ARRIVALDATE",
    "mhsds/mhs201_care_contact": "CareContDate",
    "iapt/ids201_care_contact": "CareContDate",
    "ndtms/episodes": "REFLD",
    "pnc/offences": "arrest_date",
    "hmcts/hearings": "hearing_date",
}


def source_months(bronze: dict[str, DataFrame]) -> dict[str, list[tuple[dt.date, int, dt.date]]]:
    """Each of EXTRACT_DATES' tables (bronze: contract table -> bronze table) -> its months in
    order: (first day of the month, rows dated in it, the latest date in it). None after today:
    a mistyped future date says nothing. One small aggregate per table."""
    months = {}
    for table, column in EXTRACT_DATES.items():
        rows = (
            bronze[table]
            .filter(F.col(column) <= F.current_date())
            .groupBy(F.trunc(column, "month").alias("month"))
            .agg(F.count("*").alias("rows"), F.max(column).alias("last"))
            .collect()
        )
        months[table] = sorted((r["month"], r["rows"], r["last"]) for r in rows)
    return months


def follow_up_end(configured: str | None, months: dict[str, list[tuple[dt.date, int, dt.date]]]) -> dt.date:
    """The extract's end: `configured` (analysis.follow_up_end) if set, else the latest date
    every source covers (months: source_months).

    Each source's latest date, then the earliest of those, so no source's follow-up is counted
    past the day it was cut. A source with no dated rows does not vote.
    """
    if configured:
        return dt.date.fromisoformat(configured)
    latest = [max(last for _, _, last in rows) for rows in months.values() if rows]
    return min(latest) if latest else dt.date.today()


# A source begins at its first month holding at least FIRST_MONTH_SHARE of its median month's
# rows, when the months before hold under STRAY_SHARE of its rows (a record mistyped years early,
# contacts recorded late into the first submissions); with more before, the source was thin
# there, not absent, and it begins at its first month.
FIRST_MONTH_SHARE = 0.1
STRAY_SHARE = 0.01


def source_starts(
    configured: dict[str, dt.date], months: dict[str, list[tuple[dt.date, int, dt.date]]]
) -> dict[str, dt.date]:
    """The first day each health source covers, by source (`mhsds`, the first part of its tables'
    names): `configured` (analysis.source_starts; its month counts whole) where set, else found
    in its EXTRACT_DATES table's months (months: source_months) by FIRST_MONTH_SHARE and
    STRAY_SHARE.

    A real extract begins where each dataset began (IAPT's in April 2012, MHSDS's in 2016): the
    months before are not observed, and a zero there is no zero (series.unobserved_before).
    """
    starts = {}
    for table, rows in months.items():
        if rows and source_of(table) in HEALTH_SOURCES:
            median = statistics.median(n for _, n, _ in rows)
            filled = next(i for i, (_, n, _) in enumerate(rows) if n >= FIRST_MONTH_SHARE * median)
            stray = sum(n for _, n, _ in rows[:filled]) < STRAY_SHARE * sum(n for _, n, _ in rows)
            starts[source_of(table)] = rows[filled if stray else 0][0]
    return starts | {source: day.replace(day=1) for source, day in configured.items()}


# The stage's steps, in the order pipeline.Job.series calls them.


def both_cohorts(evaluation: DataFrame, offences: DataFrame, analysis: AnalysisConf) -> DataFrame:
    """The evaluation cohort and its historic control (its members charged in the historic
    window, indexed on that arrest), with who enters the outcome analysis."""
    historic = evaluation.transform(historic_control(analysis.historic_window(), offences))
    return cohorts(evaluation, historic, analysis.declined_in_outcomes)


def referred(window: tuple[dt.date, dt.date]) -> Transform:
    """Referrals -> the analysis layer's referred table: everyone referred in the window, dates as months."""

    def _(refs: DataFrame) -> DataFrame:
        return refs.transform(referred_in_window(window)).transform(dates_as_months)

    return _
