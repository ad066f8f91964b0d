"""Monthly per-person event series around index dates (the start of issue 4's stage).

Months are calendar months relative to the index month (rel_month 0 = the index month), as
contract section 3 defines them; series run from -24 to +12.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ld_spark.config import AnalysisConf
from ld_spark.contract import source_of
from ld_spark.events import OUTCOMES, PANEL_OUTCOMES, SERIES_OUTCOMES
from ld_spark.frames import Transform


def month_number(c: str | Column) -> Column:
    column = F.col(c) if isinstance(c, str) else c
    return F.year(column) * 12 + F.month(column)


def with_rel_month(index_col: str, event_col: str) -> Transform:
    """rel_month = calendar months from the index month to the event month."""

    def _(df: DataFrame) -> DataFrame:
        return df.withColumn("rel_month", month_number(event_col) - month_number(index_col))

    return _


def in_window(first: int, last: int) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        return df.filter(F.col("rel_month").between(first, last))

    return _


def monthly_events(index: DataFrame, first: int, last: int) -> Transform:
    """Events -> the month each falls in, relative to each index of its person, within [first, last].

    index:  person_key, cohort, index_date (one row per person and cohort).
    events: person_key, outcome, event_date (one row per event).
    Returns person_key, cohort, outcome, rel_month: a person in both cohorts has each event placed
    against each index. No date leaves this step, only months relative to the index.
    """
    keys = F.broadcast(index.select("person_key", "cohort", "index_date"))

    def _(events: DataFrame) -> DataFrame:
        return (
            events.join(keys, on=["person_key"], how="inner")
            .transform(with_rel_month("index_date", "event_date"))
            .transform(in_window(first, last))
            .select("person_key", "cohort", "outcome", "rel_month")
        )

    return _


def month_panel(index: DataFrame, monthly: DataFrame, outcomes: list[str], first: int, last: int) -> DataFrame:
    """One row per person x cohort x rel_month in [first, last], zeros included.

    index:   person_key, cohort, and any other columns to carry into every month (e.g.
             in_outcomes); index_date / index_month, if present, are not carried.
    monthly: person_key, cohort, outcome, rel_month (monthly_events).
    Returns person_key, cohort, the carried columns, rel_month and one count column per outcome.
    """
    months = index.sparkSession.range(first, last + 1).select(F.col("id").cast("int").alias("rel_month"))
    carried = [c for c in index.columns if c not in ("person_key", "cohort", "index_date", "index_month")]
    grid = index.select("person_key", "cohort", *carried).crossJoin(F.broadcast(months))
    counted = monthly.groupBy("person_key", "cohort", "rel_month").pivot("outcome", outcomes).count()
    panel = grid.join(counted, on=["person_key", "cohort", "rel_month"], how="left")
    return panel.select(
        "person_key",
        "cohort",
        *carried,
        "rel_month",
        *[F.coalesce(F.col(o), F.lit(0)).cast("long").alias(o) for o in outcomes],
    )


def unobserved_before(starts: dict[str, dt.date]) -> Transform:
    """Panel (+ index_month_number: the index's year x 12 + month) -> each health outcome null in
    the months before its source began (starts: cohorts.source_starts, by source): not observed,
    where a zero would say nobody was seen. index_month_number is dropped.

    health_contacts (any source's record, for "prior contact") counts what the sources covering
    the month hold: one source missing from a month does not make the month unobserved.
    """

    def _(panel: DataFrame) -> DataFrame:
        calendar = F.col("index_month_number") + F.col("rel_month")
        out = panel
        for outcome, rule in OUTCOMES.items():
            start = starts.get(source_of(rule.table))
            if start is not None:
                out = out.withColumn(outcome, F.when(calendar >= start.year * 12 + start.month, F.col(outcome)))
        return out.drop("index_month_number")

    return _


def person_month_panel(index: DataFrame, events: DataFrame, outcomes: list[str], first: int, last: int) -> DataFrame:
    """monthly_events then month_panel: dated events straight to the zero-filled panel."""
    return month_panel(index, events.transform(monthly_events(index, first, last)), outcomes, first, last)


def with_period(pre: tuple[int, int], post: tuple[int, int]) -> Transform:
    """period = 'pre' / 'post' for rel_month in the effect windows, null outside them."""

    def _(df: DataFrame) -> DataFrame:
        rel = F.col("rel_month")
        return df.withColumn("period", F.when(rel.between(*pre), F.lit("pre")).when(rel.between(*post), F.lit("post")))

    return _


def monthly_rates(outcomes: list[str]) -> Transform:
    """Panel -> cohort, rel_month, outcome, persons, events, rate (events per person per month).

    The unadjusted series of Figure 1: every person counts in every month, zeros included. A
    month the outcome's source did not cover for every person (unobserved_before) has no row: a
    rate over only some of them is another curve, and their number, told apart from the month's
    persons, would say how many were indexed when.
    """

    def _(panel: DataFrame) -> DataFrame:
        sums = panel.groupBy("cohort", "rel_month").agg(
            F.count("*").alias("persons"),
            *[F.count(o).alias(f"{o}_observed") for o in outcomes],
            *[F.sum(o).alias(o) for o in outcomes],
        )
        stacked = F.stack(
            F.lit(len(outcomes)), *[x for o in outcomes for x in (F.lit(o), F.col(f"{o}_observed"), F.col(o))]
        )
        return (
            sums.select("cohort", "rel_month", "persons", stacked.alias("outcome", "observed", "events"))
            .filter(F.col("observed") == F.col("persons"))
            .withColumn("rate", F.col("events") / F.col("persons"))
            .select("cohort", "rel_month", "outcome", "persons", "events", "rate")
        )

    return _


# The stage's steps, in the order pipeline.Job.series calls them.


def events(dated: DataFrame, offence_events: DataFrame, cohorts: DataFrame, analysis: AnalysisConf) -> DataFrame:
    """The analysis layer's events table: dated health events placed in months relative to each
    index, and the justice events (already placed by the proven-reoffending rules)."""
    return dated.transform(monthly_events(cohorts, *analysis.series_months)).unionByName(offence_events)


def panel(
    cohorts: DataFrame, monthly: DataFrame, at_risk: DataFrame, analysis: AnalysisConf, starts: dict[str, dt.date]
) -> DataFrame:
    """The analysis layer's panel: one row per person x cohort x month, zeros included (a health
    outcome null before its source began: unobserved_before), with the month's share at risk of
    offending and its period (pre, post or neither)."""
    a = analysis
    index = cohorts.select(
        "person_key",
        "cohort",
        "in_outcomes",
        "justice_followed",
        month_number("index_date").alias("index_month_number"),
    )
    return (
        month_panel(index, monthly, PANEL_OUTCOMES, *a.series_months)
        .transform(unobserved_before(starts))
        .join(at_risk, on=["person_key", "cohort", "rel_month"], how="left")
        .transform(with_period(a.pre_months, a.post_months))
    )


def figure1_rows(panel: DataFrame) -> list[dict]:
    """Figure 1's rows (people in the outcome analysis), in a fixed order."""
    rates = [r.asDict() for r in panel.filter("in_outcomes").transform(monthly_rates(SERIES_OUTCOMES)).collect()]
    return sorted(rates, key=lambda r: (r["outcome"], r["cohort"], r["rel_month"]))


def self_rated_health(scores: DataFrame, cohorts: DataFrame, analysis: AnalysisConf) -> DataFrame:
    """The analysis layer's self-rated health table: each TOP review (events.self_rated_health)
    placed against each index of its person within the series months: person_key, cohort,
    in_outcomes, rel_month, score."""
    keys = F.broadcast(cohorts.select("person_key", "cohort", "index_date", "in_outcomes"))
    return (
        scores.join(keys, on=["person_key"], how="inner")
        .transform(with_rel_month("index_date", "event_date"))
        .transform(in_window(*analysis.series_months))
        .select("person_key", "cohort", "in_outcomes", "rel_month", "score")
    )


def self_rated_health_rows(scores: DataFrame) -> list[dict]:
    """Figure 1's self-rated health panel: mean score by cohort and month (people in the outcome
    analysis), with the number of reviews behind each mean.

    The mean is released to 4 decimals (of a 0-20 score): a mean of thirds differs in its last
    digits with the order Spark adds them in, and a released file should not change with that."""
    means = (
        scores.filter("in_outcomes")
        .groupBy("cohort", "rel_month")
        .agg(F.count("*").alias("reviews"), F.round(F.avg("score"), 4).alias("mean_score"))
    )
    return sorted((r.asDict() for r in means.collect()), key=lambda r: (r["cohort"], r["rel_month"]))
