"""Justice outcomes under the proven-reoffending rules of contract section 4.

- A **proven offence** is charged and ends in a conviction disposal (custodial or non-custodial
  code) dated no later than `waiting_months` after the end of the period its offence falls in
  (pre: month -1, post: month +11, any other month: itself). The same window in every cohort and
  period, so an extract cut soon after the follow-up cannot favour one cell.
- The **index offence** (the one the index date stands for) is not a re-offence; it sits in month
  0 of its own cohort whatever its offence date says, for custody, sentence and court outcomes too.
- A **police contact** is any other PNC record that is not a proven offence (no charge, no
  conviction, or none within the waiting period).
- **Court durations** stay with open cases: a case still open at the extract's end carries the
  days to that end and `*_observed = false`, for the restricted-mean estimator. A case committed
  to the Crown Court is timed with its Crown case; one whose Crown case is not found is censored
  at its committal. A case record without a first hearing date takes its earliest hearing's;
  one first listed after the extract's end is censored at 0 days (it had not begun); a time the
  two clocks make negative (completed before its first hearing, sentenced before its arrest) is
  no time, and such cases are counted in the descriptives (n_cases_untimed_*).
- **Time at risk**: days in custody (sentence date onward, custodial days x the share served) and
  days after the extract's end are not months in which a person can offend.

Every table keeps cohort, rel_month and period; no date leaves this module (days and months only).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ld_spark import events
from ld_spark.cohorts import HISTORIC
from ld_spark.config import AnalysisConf
from ld_spark.frames import Transform
from ld_spark.series import month_number, with_period

CUSTODIAL = ("1002", "1024", "1081")  # imprisonment, YOI, DTO
NON_CUSTODIAL = ("1115", "1116", "1015", "1018", "1019")  # suspended, community, fine, discharges
CONVICTION = CUSTODIAL + NON_CUSTODIAL
# 2050 dismissed and 2063 withdrawn are disposals without a conviction.

# No dates: the analysis layer keeps months relative to the index and intervals in days.
OFFENCE_COLUMNS = [
    "person_key",
    "cohort",
    "in_outcomes",
    "justice_followed",
    "rel_month",
    "period",
    "clock_rel_month",
    "clock_period",
    "index_offence",
    "offence_category",
    "disposal_code",
    "convicted",
    "custodial_code",
    "proven",
    "police_contact",
    "sentenced",
    "custodial",
    "custodial_days",
    "sentencing_occasion",
]
CASE_COLUMNS = [
    "person_key",
    "cohort",
    "in_outcomes",
    "justice_followed",
    "rel_month",
    "period",
    "clock_rel_month",
    "clock_period",
    "index_offence",
    "source_system",
    "case_outcome",
    "completed",
    "duration_days",
    "duration_observed",
    "hearings",
    "adjournments",
    "hearings_observed",
    "hearings_all",
    "adjournments_all",
    "arrest_to_sentence_days",
    "sentence_observed",
]
INDEX_COLUMNS = ["person_key", "cohort", "index_date", "in_outcomes", "justice_followed"]


def with_justice_follow_up(end: dt.date, post: tuple[int, int], waiting_months: int) -> Transform:
    """Cohorts -> + justice_followed: the post period and its waiting period end by `end`.

    The last day of month post[1] + waiting_months after the index month must not be after the
    extract's end; people who fall short are reported and left out of the justice outcomes.
    """

    def _(cohorts: DataFrame) -> DataFrame:
        last = F.last_day(F.add_months(F.trunc("index_date", "month"), post[1] + waiting_months))
        return cohorts.withColumn("justice_followed", last <= F.lit(end))

    return _


def index_offences(cohorts: DataFrame, tolerance_days: int) -> Transform:
    """Linked PNC offences -> person_key, cohort, offence_id, offence_date, charge_date: each
    cohort member's index offence (case_offences marks its court case by its offence_id).

    The offence whose arrest (or, without one, offence) date is nearest the index date, at most
    `tolerance_days` away; failing that, the one whose offence date is (the L&D index is "the
    arrest/offence that led to the referral": an offence found later, arrested weeks after, is
    still the index). Ties go to a charged offence, then the lowest offence_id. The historic
    index is an arrest date, so its own offence is found at distance 0 by its arrest.
    """
    index = F.broadcast(cohorts.select("person_key", "cohort", "index_date"))

    def _(offences: DataFrame) -> DataFrame:
        by_arrest = F.abs(F.datediff(F.coalesce("arrest_date", "offence_date"), "index_date"))
        by_offence = F.abs(F.datediff("offence_date", "index_date"))
        near = (
            offences.join(index, on=["person_key"], how="inner")
            .withColumn("_tier", F.when(by_arrest <= tolerance_days, 0).when(by_offence <= tolerance_days, 1))
            .filter(F.col("_tier").isNotNull())
            .withColumn("_gap", F.when(F.col("_tier") == 0, by_arrest).otherwise(by_offence))
        )
        order = Window.partitionBy("person_key", "cohort").orderBy(
            "_tier", "_gap", F.col("charge_date").isNull(), "offence_id"
        )
        return (
            near.withColumn("_n", F.row_number().over(order))
            .filter(F.col("_n") == 1)
            .select("person_key", "cohort", "offence_id", "offence_date", "charge_date")
        )

    return _


def _placed(
    cohorts: DataFrame,
    index_ids: DataFrame,
    series: tuple[int, int],
    pre: tuple[int, int],
    post: tuple[int, int],
    key: list[str],
    dated_by: str,
) -> Transform:
    """Rows with `key` columns -> one row per cohort membership, rel_month (0 for the index
    offence), period, index_offence; within the series months.

    index_ids: person_key, cohort and the `key` columns (minus person_key) of each index offence.
    """
    index = F.broadcast(cohorts.select(*INDEX_COLUMNS))
    flags = (
        index_ids.select("person_key", "cohort", *[k for k in key if k != "person_key"])
        .distinct()
        .withColumn("index_offence", F.lit(True))
    )

    def _(df: DataFrame) -> DataFrame:
        # A person in both cohorts has each record placed against each index, on purpose.
        joined = (
            df.join(index, on=["person_key"], how="inner")
            .join(flags, on=["cohort", *key], how="left")
            .withColumn("index_offence", F.coalesce("index_offence", F.lit(False)))
        )
        rel = month_number(dated_by) - month_number("index_date")
        # clock_*: the record's own month, index offence or not - the plain specification's
        # clock, kept beside the rules' so the two can be compared on the same tables.
        clock = (
            joined.withColumn("rel_month", rel)
            .transform(with_period(pre, post))
            .withColumnRenamed("rel_month", "clock_rel_month")
            .withColumnRenamed("period", "clock_period")
        )
        in_series = F.col("rel_month").between(*series) | F.col("clock_rel_month").between(*series)
        return (
            clock.withColumn("rel_month", F.when(F.col("index_offence"), F.lit(0)).otherwise(F.col("clock_rel_month")))
            .filter(in_series)
            .transform(with_period(pre, post))
        )

    return _


def cohort_offences(
    cohorts: DataFrame,
    index_ids: DataFrame,
    series: tuple[int, int],
    pre: tuple[int, int],
    post: tuple[int, int],
    waiting_months: int,
) -> Transform:
    """Linked PNC offences (person_key + bronze columns) -> every PNC record of the cohorts,
    classified: index offence, proven offence, police contact, sentence (OFFENCE_COLUMNS).

    cohorts: INDEX_COLUMNS; index_ids: index_offences().
    """

    def _(offences: DataFrame) -> DataFrame:
        # A record with a disposal date but no (or an unknown) code is not a conviction: false,
        # never null, so that it still counts as a police contact.
        conviction = F.coalesce(F.col("disposal_code").isin(*CONVICTION), F.lit(False))
        custodial_code = F.coalesce(F.col("disposal_code").isin(*CUSTODIAL), F.lit(False))
        disposed = F.col("disposal_date").isNotNull()
        rel = F.col("rel_month")
        period_end = F.when(rel.between(*pre), F.lit(pre[1])).when(rel.between(*post), F.lit(post[1])).otherwise(rel)
        placed = (
            offences.filter(F.coalesce("offence_date", "arrest_date").isNotNull())
            .withColumn("_dated", F.coalesce("offence_date", "arrest_date"))
            .transform(_placed(cohorts, index_ids, series, pre, post, ["person_key", "offence_id"], "_dated"))
            .withColumn("_period_end", period_end + waiting_months)
        )
        deadline = F.last_day(F.expr("add_months(trunc(index_date, 'month'), _period_end)"))
        # Contract: "PNC records with no charge, or with no conviction, are not offences."
        charged = F.col("charge_date").isNotNull()
        proven = charged & conviction & F.coalesce(F.col("disposal_date") <= deadline, F.lit(False))
        custodial = proven & custodial_code
        return (
            placed.withColumn("convicted", conviction & disposed)
            .withColumn("proven", proven)
            .withColumn("police_contact", ~F.col("index_offence") & ~F.col("proven"))
            .withColumn("sentenced", F.col("proven"))
            .withColumn("custodial", custodial)
            .withColumn("custodial_code", custodial_code & disposed)
            # Days of any custodial disposal (the rules use those of `custodial` rows only).
            .withColumn("custodial_days", F.when(F.col("custodial_code"), F.col("custodial_days")))
            # Offences disposed on one day are one sentencing occasion (concurrent sentences are
            # served together): numbered within the person, so no date leaves.
            .withColumn(
                "sentencing_occasion",
                F.when(disposed, F.dense_rank().over(Window.partitionBy("person_key").orderBy("disposal_date"))),
            )
            .select(*OFFENCE_COLUMNS)
        )

    return _


def offence_events(offences: DataFrame) -> DataFrame:
    """cohort_offences() -> person_key, cohort, outcome, rel_month for the panel:
    `offences` (proven, index offence left out) and `police_contacts`."""
    proven = offences.filter(F.col("proven") & ~F.col("index_offence")).select(
        "person_key", "cohort", F.lit("offences").alias("outcome"), "rel_month"
    )
    contacts = offences.filter("police_contact").select(
        "person_key", "cohort", F.lit("police_contacts").alias("outcome"), "rel_month"
    )
    return proven.unionByName(contacts)


def months_at_risk(
    cohorts: DataFrame,
    end: dt.date,
    share_served: float,
    series: tuple[int, int],
    selected: dict[str, dt.date] | None = None,
) -> Transform:
    """Linked PNC offences -> person_key, cohort, rel_month, at_risk for every month of the series.

    at_risk is the share of the month's days a person could offend: days in custody (from the
    disposal date, custodial_days x share_served, for custodial disposals) and days after the
    extract's end come off. Overlapping sentences are counted once.

    selected: cohort -> the first day of its charge window. The historic control is *defined* by
    its first arrest charged in that window, so from the window's start to the index arrest it
    cannot have an arrest that led to a charge there: those days are not at risk of a proven
    offence (nor, symmetrically, of a police contact), and come off too.
    """

    def _(offences: DataFrame) -> DataFrame:
        spark = offences.sparkSession
        months = spark.range(series[0], series[1] + 1).select(F.col("id").cast("int").alias("rel_month"))
        grid = (
            cohorts.select("person_key", "cohort", "index_date")
            .crossJoin(F.broadcast(months))
            .withColumn("_start", F.expr("add_months(trunc(index_date, 'month'), rel_month)"))
            .withColumn("_next", F.add_months("_start", 1))
            .withColumn("_days", F.datediff("_next", "_start"))
        )
        stays = offences.filter(
            F.col("disposal_code").isin(*CUSTODIAL) & F.col("disposal_date").isNotNull() & (F.col("custodial_days") > 0)
        ).select(
            "person_key",
            F.col("disposal_date").alias("_from"),
            F.date_add("disposal_date", F.ceil(F.col("custodial_days") * share_served).cast("int")).alias("_to"),
        )
        # Each day of a month is either in custody or not: expand stays to the days of the
        # months they touch, so that overlapping sentences cannot take a day off twice.
        # The selected stretch [window start, index date) of a cohort defined by a charge window.
        sel_from = F.lit(None).cast("date")
        for cohort, start in (selected or {}).items():
            sel_from = F.when(F.col("cohort") == cohort, F.lit(start)).otherwise(sel_from)
        grid = grid.withColumn("_sel_from", sel_from)
        in_selected = F.coalesce(
            (F.col("_day") >= F.col("_sel_from")) & (F.col("_day") < F.col("index_date")), F.lit(False)
        )
        days = (
            grid.join(stays, on=["person_key"], how="inner")
            .filter((F.col("_from") < F.col("_next")) & (F.col("_to") > F.col("_start")))
            .withColumn(
                "_day", F.explode(F.sequence(F.greatest("_from", "_start"), F.date_sub(F.least("_to", "_next"), 1)))
            )
            .filter((F.col("_day") <= F.lit(end)) & ~in_selected)
            .select("person_key", "cohort", "rel_month", "_day")
            .distinct()
            .groupBy("person_key", "cohort", "rel_month")
            .agg(F.count("*").alias("_custody"))
        )
        after_end = F.greatest(F.lit(0), F.datediff("_next", F.greatest("_start", F.date_add(F.lit(end), 1))))
        # (greatest/least skip nulls, so a cohort without a window is tested for explicitly.)
        selected_days = F.when(F.col("_sel_from").isNull(), F.lit(0)).otherwise(
            F.greatest(F.lit(0), F.datediff(F.least("_next", "index_date"), F.greatest("_start", "_sel_from")))
        )
        return (
            grid.join(days, on=["person_key", "cohort", "rel_month"], how="left")
            .withColumn("_away", F.least("_days", F.coalesce("_custody", F.lit(0)) + after_end + selected_days))
            .select(
                "person_key",
                "cohort",
                "rel_month",
                ((F.col("_days") - F.col("_away")) / F.col("_days")).alias("at_risk"),
            )
        )

    return _


def hearing_counts(hearings: DataFrame, cases: DataFrame, horizon_days: int) -> DataFrame:
    """Bronze hearings + cases -> case_id, hearings, adjournments within horizon_days of the
    case's first hearing (so a long case and a case cut by the extract count the same span)."""
    first = cases.select("case_id", "first_hearing_date")
    within = F.col("hearing_date").isNull() | (F.col("hearing_date") <= F.date_add("first_hearing_date", horizon_days))
    adjourned = F.coalesce(F.col("adjourned"), F.lit(False))
    return (
        hearings.join(first, on=["case_id"], how="inner")
        .groupBy("case_id")
        .agg(
            F.sum(F.when(within, 1).otherwise(0)).alias("hearings"),
            F.sum(F.when(within & adjourned, 1).otherwise(0)).alias("adjournments"),
            # Every hearing of the case, for the plain specification.
            F.count("*").alias("hearings_all"),
            F.sum(F.when(adjourned, 1).otherwise(0)).alias("adjournments_all"),
        )
    )


def case_offences(cases: DataFrame, offences: DataFrame, index_ids: DataFrame, tolerance_days: int) -> DataFrame:
    """Linked HMCTS cases + linked PNC offences -> case_id, offence_id, arrest_date: the PNC
    offence each case is for, at most one.

    A court case names its offence and charge dates, not its offence or arrest. Its offence is
    one of the same person's PNC offences with the same offence date, charged at most
    `tolerance_days` from the case's charge date where both have one (the two systems' clocks
    can differ by days; a summons case has none): the one with the same charge date first, then
    the nearest, then an index offence (index_ids: index_offences()), then a charged one, the
    earliest arrest and the lowest offence_id. A case with no such offence has no arrest date
    and is no index case.
    """
    pnc = offences.filter(F.col("offence_date").isNotNull()).select(
        "person_key", "offence_date", F.col("charge_date").alias("_charged"), "arrest_date", "offence_id"
    )
    index = index_ids.select("person_key", "offence_id", F.lit(True).alias("_index")).distinct()
    gap = F.abs(F.datediff("charge_date", "_charged"))  # null where either has no charge date
    order = Window.partitionBy("case_id").orderBy(
        F.col("_gap").asc_nulls_last(),
        F.col("_index").asc_nulls_last(),
        F.col("_charged").isNull(),
        F.col("arrest_date").asc_nulls_last(),
        "offence_id",
    )
    return (
        cases.select("case_id", "person_key", "offence_date", "charge_date")
        .join(pnc, on=["person_key", "offence_date"], how="inner")
        .withColumn("_gap", gap)
        .filter(F.col("_gap").isNull() | (F.col("_gap") <= tolerance_days))
        .join(index, on=["person_key", "offence_id"], how="left")
        .withColumn("_n", F.row_number().over(order))
        .filter(F.col("_n") == 1)
        .select("case_id", "offence_id", "arrest_date")
    )


def committals(cases: DataFrame, offences_of_cases: DataFrame) -> DataFrame:
    """case_id, crown_case_id: each case committed to the Crown Court (`case_outcome` committed)
    and the Crown Court case that continued it: the same person's XHIBIT case of the same PNC
    offence (offences_of_cases: case_offences()), the one first heard earliest. A committal whose
    Crown case is not found has no row."""
    found = cases.join(offences_of_cases.filter(F.col("offence_id").isNotNull()), on=["case_id"], how="inner")
    committed = found.filter(F.col("case_outcome") == "committed").select("case_id", "person_key", "offence_id")
    # A Crown case committed on in its turn is a committal, not the case that continued one.
    continued = (F.col("source_system") == "XHIBIT") & ~F.coalesce(F.col("case_outcome") == "committed", F.lit(False))
    crown = found.filter(continued).select(
        F.col("case_id").alias("crown_case_id"), "person_key", "offence_id", F.col("first_hearing_date").alias("_first")
    )
    order = Window.partitionBy("case_id").orderBy(F.col("_first").asc_nulls_last(), "crown_case_id")
    return (
        committed.join(crown, on=["person_key", "offence_id"], how="inner")
        .filter(F.col("case_id") != F.col("crown_case_id"))
        .withColumn("_n", F.row_number().over(order))
        .filter(F.col("_n") == 1)
        .select("case_id", "crown_case_id")
    )


def through_committals(cases: DataFrame, hearings: DataFrame, committed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Cases and hearings with each committal and its Crown case as one case (committed:
    committals()). The Ministry of Justice times a case sent to the Crown Court from its first
    listing at the magistrates' court to its completion at the Crown Court: the Crown case keeps
    the earlier first hearing of the two and both legs' hearings, and the magistrates' leg, whose
    completion is only its committal, leaves the cases (it is part of the Crown case now)."""
    legs = (
        cases.join(committed, on=["case_id"], how="inner")
        .groupBy(F.col("crown_case_id").alias("case_id"))
        .agg(F.min("first_hearing_date").alias("_first"))
    )
    merged_cases = (
        cases.join(committed.select("case_id"), on=["case_id"], how="left_anti")
        .join(legs, on=["case_id"], how="left")
        .withColumn("first_hearing_date", F.least("first_hearing_date", "_first"))
        .drop("_first")
    )
    merged_hearings = (
        hearings.join(committed, on=["case_id"], how="left")
        .withColumn("case_id", F.coalesce("crown_case_id", "case_id"))
        .drop("crown_case_id")
    )
    return merged_cases, merged_hearings


def _elapsed(start: str, end: str) -> Column:
    """Days from start to a date the records give (a completion, a sentence, a committal); null
    where the two clocks put that date first (a completion before the first hearing, a sentence
    before the arrest): no time to count."""
    days = F.datediff(end, start)
    return F.when(days >= 0, days)


def _waited(start: str, end: dt.date) -> Column:
    """Days from start to the extract's end for a case still open there, at least 0: a case first
    listed after the end had not begun (it leaves the restricted mean's risk set at once)."""
    days = F.datediff(F.lit(end), start)
    return F.when(days < 0, F.lit(0)).otherwise(days)


def first_heard(hearings: DataFrame) -> Transform:
    """Cases -> the same cases, a blank first_hearing_date taken from the case's earliest hearing
    (the hearings are the court's own record of when it sat); a case never heard keeps it blank."""
    earliest = (
        hearings.filter(F.col("hearing_date").isNotNull()).groupBy("case_id").agg(F.min("hearing_date").alias("_heard"))
    )

    def _(cases: DataFrame) -> DataFrame:
        return (
            cases.join(earliest, on=["case_id"], how="left")
            .withColumn("first_hearing_date", F.coalesce("first_hearing_date", "_heard"))
            .select(*cases.columns)
        )

    return _


def cohort_cases(
    cohorts: DataFrame,
    index_ids: DataFrame,
    hearings: DataFrame,
    offences_of_cases: DataFrame,
    end: dt.date,
    series: tuple[int, int],
    pre: tuple[int, int],
    post: tuple[int, int],
    horizon_days: int,
) -> Transform:
    """Linked HMCTS cases (person_key + bronze columns) -> the cohorts' cases with their timeliness.

    hearings: hearing_counts(); offences_of_cases: case_offences(); both unique on case_id.
    A case is its PNC offence's (case_offences): the index offence's case sits in month 0. Open
    cases keep the days to the extract's end (0 for one first listed after it), marked not
    observed; a time the clocks make negative is none (_elapsed). A committal left here (its
    Crown case not found: through_committals) had not ended when it left the magistrates'
    court: it keeps the days to its committal, marked not observed, and its hearings (the
    magistrates' only) are not counted.
    """

    def _(cases: DataFrame) -> DataFrame:
        open_ = F.col("completion_date").isNull()
        committed = F.coalesce(F.col("case_outcome") == "committed", F.lit(False))
        ended = ~open_ & ~committed
        sentenced = F.col("sentence_date").isNotNull()
        # Open: censored at the end. Ended, or committed (censored at its committal): to the
        # completion date the court gives.
        court_days = F.when(open_, _waited("first_hearing_date", end)).otherwise(
            _elapsed("first_hearing_date", "completion_date")
        )
        sentence_days = (
            F.when(sentenced, _elapsed("arrest_date", "sentence_date"))
            .when(open_, _waited("arrest_date", end))
            .when(committed, _elapsed("arrest_date", "completion_date"))
        )
        return (
            cases.filter(F.col("offence_date").isNotNull())
            .join(hearings, on=["case_id"], how="left")
            .join(offences_of_cases, on=["case_id"], how="left")
            .transform(_placed(cohorts, index_ids, series, pre, post, ["person_key", "offence_id"], "offence_date"))
            .withColumn("completed", ended)
            .withColumn("duration_days", court_days)
            .withColumn("duration_observed", ended)
            # A case without a first hearing date has no hearing window to observe: false, not null.
            # Nor has a committal whose Crown case is not found: its Crown hearings are missing.
            .withColumn(
                "hearings_observed",
                F.coalesce(F.date_add("first_hearing_date", horizon_days) <= F.lit(end), F.lit(False)) & ~committed,
            )
            .withColumn("hearings", F.coalesce("hearings", F.lit(0)))
            .withColumn("adjournments", F.coalesce("adjournments", F.lit(0)))
            .withColumn("hearings_all", F.coalesce("hearings_all", F.lit(0)))
            .withColumn("adjournments_all", F.coalesce("adjournments_all", F.lit(0)))
            # Sentenced: observed. Open: censored at the end (a committal: at its committal).
            # Ended without a sentence: none.
            .withColumn("arrest_to_sentence_days", sentence_days)
            .withColumn("sentence_observed", sentenced)
            .select(*CASE_COLUMNS)
        )

    return _


# The stage's steps, in the order pipeline.Job.series calls them.


def linked_offences(record_person: DataFrame, people: DataFrame) -> Transform:
    """Bronze PNC offences -> the offences of `people`, each with its person_key."""

    def _(offences: DataFrame) -> DataFrame:
        return offences.withColumn("record_key", F.col("offence_id")).transform(
            events.with_person("pnc/offences", record_person, people)
        )

    return _


def with_follow_up(end: dt.date, analysis: AnalysisConf) -> Transform:
    """with_justice_follow_up with the analysis settings."""
    return with_justice_follow_up(end, analysis.post_months, analysis.waiting_months)


def linked_cases(record_person: DataFrame, people: DataFrame) -> Transform:
    """Bronze HMCTS cases -> the cases of `people`, each with its person_key."""

    def _(cases: DataFrame) -> DataFrame:
        return cases.withColumn("record_key", F.col("case_id")).transform(
            events.with_person("hmcts/cases", record_person, people)
        )

    return _


def classified_offences(cohorts: DataFrame, index_ids: DataFrame, analysis: AnalysisConf) -> Transform:
    """Linked PNC offences -> the analysis layer's offences table (cohort_offences with the settings)."""
    a = analysis
    return cohort_offences(cohorts, index_ids, a.series_months, a.pre_months, a.post_months, a.waiting_months)


def classified_cases(
    cohorts: DataFrame,
    index_ids: DataFrame,
    offences: DataFrame,
    hearings: DataFrame,
    end: dt.date,
    analysis: AnalysisConf,
) -> Transform:
    """Linked HMCTS cases -> the analysis layer's court_cases table: first hearings found in the
    hearings where the case has none (first_heard), offences and arrests found among the linked
    PNC offences, committals joined to their Crown cases, hearings counted from bronze hearings."""
    a = analysis

    def _(cases: DataFrame) -> DataFrame:
        cases = cases.transform(first_heard(hearings))
        offences_of_cases = case_offences(cases, offences, index_ids, a.index_offence_tolerance_days)
        merged, merged_hearings = through_committals(cases, hearings, committals(cases, offences_of_cases))
        counted = hearing_counts(merged_hearings, merged, a.restricted_mean_days)
        return merged.transform(
            cohort_cases(
                cohorts,
                index_ids,
                counted,
                offences_of_cases,
                end,
                a.series_months,
                a.pre_months,
                a.post_months,
                a.restricted_mean_days,
            )
        )

    return _


def at_risk(cohorts: DataFrame, end: dt.date, share_served: float, analysis: AnalysisConf) -> Transform:
    """months_at_risk with the historic control's charge window taken off its pre-index months."""
    return months_at_risk(cohorts, end, share_served, analysis.series_months, {HISTORIC: analysis.historic_window()[0]})
