"""Sources that began after the series does: their months before are not observed, not zero."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
from pyspark.sql import functions as F

from ld_spark import cohorts, descriptives, estimators
from ld_spark.effects import observed, person_period_sums
from ld_spark.events import PANEL_OUTCOMES
from ld_spark.series import month_number, monthly_rates, person_month_panel, unobserved_before, with_period

D = dt.date


def _months(*spans):
    """(first month, counts...) -> [(first day, rows, last day in it)], one month after another."""
    out = []
    for (year, month), *counts in spans:
        for i, n in enumerate(counts):
            y, m = divmod(year * 12 + month - 1 + i, 12)
            out.append((D(y, m + 1, 1), n, D(y, m + 1, 20)))
    return out


def test_a_source_begins_where_its_months_fill_not_at_a_record_mistyped_years_before():
    months = {
        # One record dated 2009 (a typo), then the data set from January 2016.
        "mhsds/mhs201_care_contact": _months(((2009, 3), 1), ((2016, 1), 40, 55, 60, 50, 52, 58)),
        # A first month at a tenth of the median still counts: the start of a data set is thin.
        "iapt/ids201_care_contact": _months(((2012, 4), 3, 30, 30, 31, 29)),
        "hes_ae": _months(((2011, 1), 9, 10, 11)),
        # Thin at first (only a few people's records reach back), not absent: 4 of 164 rows, over
        # 1% of them, come before the first month with a tenth of the median (20).
        "ndtms/episodes": _months(((2011, 1), 1, 1, 1, 1, *[20] * 8)),
    }
    assert cohorts.source_starts({}, months) == {
        "mhsds": D(2016, 1, 1),
        "iapt": D(2012, 4, 1),
        "hes_ae": D(2011, 1, 1),
        "ndtms": D(2011, 1, 1),
    }
    # A start the analyst knows wins, from the first of its month; PNC gets none.
    assert cohorts.source_starts({"ndtms": D(2015, 7, 14)}, months)["ndtms"] == D(2015, 7, 1)
    assert "pnc" not in cohorts.source_starts({}, {"pnc/offences": _months(((2011, 1), 5))})
    # The end: the earliest of the sources' latest dates (A&E's 2011-03-20), from the same months.
    assert cohorts.follow_up_end(None, months) == D(2011, 3, 20)


def test_source_months_counts_each_month_and_its_latest_date_and_nothing_after_today(spark):
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    dates = {table: [] for table in cohorts.EXTRACT_DATES}
    dates["hes_ae"] = [D(2016, 1, 3), D(2016, 1, 28), D(2016, 3, 1), None, tomorrow]
    bronze = {
        table: spark.createDataFrame([(d,) for d in values], f"{column} date")
        for (table, column), values in zip(cohorts.EXTRACT_DATES.items(), dates.values(), strict=True)
    }
    got = cohorts.source_months(bronze)
    assert got["hes_ae"] == [(D(2016, 1, 1), 2, D(2016, 1, 28)), (D(2016, 3, 1), 1, D(2016, 3, 1))]
    assert got["pnc/offences"] == []


INDEX = "person_key string, cohort string, index_date date"
EVENTS = "person_key string, outcome string, event_date date"


def _panel(spark, starts):
    index = spark.createDataFrame(
        [("p1", "evaluation", D(2017, 5, 10)), ("p1", "historic", D(2013, 9, 2))], INDEX
    ).withColumn("index_month_number", month_number("index_date"))
    events = spark.createDataFrame(
        [
            # A referral received in 2015, still open when MHSDS began in 2016: in the extract, but
            # in a month MHSDS did not cover.
            ("p1", "mh_referrals", D(2015, 12, 1)),
            ("p1", "mh_referrals", D(2016, 2, 1)),
            ("p1", "ae_attendances", D(2013, 8, 5)),
            ("p1", "ae_attendances", D(2015, 12, 9)),
        ],
        EVENTS,
    )
    return person_month_panel(index, events, PANEL_OUTCOMES, -24, 12).transform(unobserved_before(starts))


def test_months_before_a_source_began_hold_no_count_and_other_sources_keep_theirs(spark):
    panel = _panel(spark, {"mhsds": D(2016, 1, 1), "hes_ae": D(2011, 1, 1)})
    assert "index_month_number" not in panel.columns
    rows = {(r.cohort, r.rel_month): r for r in panel.collect()}
    # Evaluation index 2017-05: MHSDS covers from rel_month -16 (2016-01).
    assert [rows["evaluation", m].mh_referrals for m in (-18, -17, -16, -15)] == [None, None, 0, 1]
    # Historic index 2013-09: its whole series (2011-09 to 2014-09) is before MHSDS.
    assert {rows["historic", m].mh_referrals for m in range(-24, 13)} == {None}
    assert {rows["historic", m].mh_contacts for m in range(-24, 13)} == {None}
    # A&E covers every month: its zeros stay zeros, its events are counted.
    assert rows["historic", -1].ae_attendances == 1 and rows["historic", -2].ae_attendances == 0
    assert rows["evaluation", -17].ae_attendances == 1
    # A source with no start found is taken as covering every month.
    assert rows["historic", 0].drug_referrals == 0


def test_a_persons_exposure_is_the_months_its_source_covers(spark):
    panel = _panel(spark, {"mhsds": D(2016, 1, 1)}).withColumn("in_outcomes", F.lit(True))
    period = panel.transform(with_period((-24, -1), (0, 11)))
    sums = period.transform(person_period_sums(["mh_referrals", "ae_attendances"])).toPandas()
    got = {(r.evaluation, r.post): (r.months, r.mh_referrals_months, r.mh_referrals) for r in sums.itertuples()}
    assert got[1, 0][:2] == (24, 16) and got[1, 0][2] == 1  # 2016-01..2017-04 observed, one referral
    assert got[1, 1] == (12, 12, 0)
    assert got[0, 0][:2] == (24, 0) and math.isnan(got[0, 0][2])  # nothing observed: no count, not 0
    assert set(sums[observed("ae_attendances")]) == {24, 12}
    # Figure 1 counts people where the month is observed, and has no row where no one is.
    rates = {
        (r.cohort, r.rel_month, r.outcome): r.persons
        for r in panel.transform(monthly_rates(["mh_referrals"])).collect()
    }
    assert rates[("evaluation", -16, "mh_referrals")] == 1
    assert ("evaluation", -17, "mh_referrals") not in rates and not any(k[0] == "historic" for k in rates)


def _sums(rows):
    return pd.DataFrame(rows, columns=["person", "evaluation", "post", "y", "y_months"])


def test_a_rate_ratio_uses_only_the_months_the_source_covers():
    nan = float("nan")
    df = _sums(
        [
            # evaluation: 6 events in 24 months before, 12 in 24 after
            (1, 1, 0, 2, 12),
            (2, 1, 0, 4, 12),
            (1, 1, 1, 5, 12),
            (2, 1, 1, 7, 12),
            # historic: before, person 3 observed 6 months (3 events), person 4 not at all
            (3, 0, 0, 3, 6),
            (4, 0, 0, nan, 0),
            (3, 0, 1, 2, 12),
            (4, 0, 1, 4, 12),
        ]
    )
    est = estimators.count_did("y_rr", df, "y", exposure="y_months")
    # (12/24 / 6/24) / (6/24 / 3/6) = 2 / 0.5
    assert est.estimate == pytest.approx(4.0, rel=1e-9)
    assert est.n == 4
    unobserved = df.assign(y_months=df["y_months"].where(df["evaluation"] == 1, 0))
    withheld = estimators.count_did("y_rr", unobserved, "y", exposure="y_months")
    assert withheld.estimate is None and "no month its source covers" in withheld.method


def test_no_prior_contact_says_which_sources_began_after_the_prior_months_did():
    starts = {"mhsds": D(2016, 1, 1), "iapt": D(2012, 4, 1), "hes_ae": D(2015, 1, 1)}
    # An index offence in January 2017: its 24 prior months begin 2015-01, MHSDS began after,
    # A&E that month.
    said = descriptives.unobserved_prior(starts, D(2017, 1, 20), -24)
    assert said == "; sources beginning after 2015-01 (mhsds 2016-01): no record of them before they began"
    assert descriptives.unobserved_prior(starts, D(2017, 1, 20), -12) == ""
    # An index offence in the December before the referral window: its prior months begin 2014-12.
    said = descriptives.unobserved_prior(starts, D(2016, 12, 5), -24)
    assert said == (
        "; sources beginning after 2014-12 (hes_ae 2015-01, mhsds 2016-01): no record of them before they began"
    )


def test_an_event_study_month_one_cohort_is_not_observed_in_loses_only_its_own_ratio():
    nan = float("nan")
    rows = [
        # person, evaluation, level, y, y_months
        (1, 1, "ref", 6, 12),
        (2, 1, "ref", 6, 12),
        (1, 1, "-1", 1, 1),
        (2, 1, "-1", 2, 1),
        (1, 1, "-2", 1, 1),
        (2, 1, "-2", 1, 1),
        (3, 0, "ref", 3, 12),
        (4, 0, "ref", 3, 12),
        (3, 0, "-1", 0, 1),
        (4, 0, "-1", 1, 1),
        # The historic cohort's month -2 is before its source began.
        (3, 0, "-2", nan, 0),
        (4, 0, "-2", nan, 0),
    ]
    df = pd.DataFrame(rows, columns=["person", "evaluation", "level", "y", "y_months"])
    got = estimators.event_study(df, "y", exposure="y_months").set_index("level")
    assert list(got.index) == ["-1", "-2"]
    # (3/2 over 12/24) / (1/2 over 6/24): a saturated model's ratio is the cells' own.
    assert got.loc["-1", "rr"] == pytest.approx(1.5, rel=1e-6)
    assert math.isnan(got.loc["-2", "rr"]) and got.loc["-2", "people"] == 4
