"""Cohort rules of contract section 3, pinned on hand-built frames."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality

from ld_spark.cohorts import cohorts, evaluation_cohort, historic_control, referred_in_window

D = dt.date
WINDOW = (D(2017, 1, 1), D(2017, 9, 30))
FY1314 = (D(2013, 4, 1), D(2014, 3, 31))
REFS = (
    "person_key string, site_code string, referral_date date, index_offence_date date, "
    "consent boolean, declined boolean"
)
COHORT = "person_key string, cohort string, index_date date, site_code string, declined boolean"


def _refs(spark, rows):
    return spark.createDataFrame(rows, REFS)


def test_index_is_the_offence_date_of_the_first_consenting_referral_in_the_window(spark):
    refs = _refs(
        spark,
        [
            ("p1", "LD02", D(2017, 6, 1), D(2017, 5, 30), True, False),
            ("p1", "LD01", D(2017, 2, 3), D(2017, 2, 1), True, False),  # first in window: the index
            ("p1", "LD03", D(2016, 12, 20), D(2016, 12, 19), True, False),  # before the window
            ("p2", "LD04", D(2017, 3, 1), D(2017, 2, 27), False, False),  # did not consent
            ("p2", "LD04", D(2017, 4, 1), D(2017, 4, 1), True, True),  # consented later: in, declined
            ("p3", "LD05", D(2017, 10, 1), D(2017, 9, 30), True, False),  # referred after the window
        ],
    )
    got = refs.transform(evaluation_cohort(WINDOW, D(2019, 12, 31), 12))
    expected = spark.createDataFrame(
        [("p1", "evaluation", D(2017, 2, 1), "LD01", False), ("p2", "evaluation", D(2017, 4, 1), "LD04", True)], COHORT
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_people_followed_up_for_less_than_twelve_months_are_left_out(spark):
    refs = _refs(
        spark,
        [
            ("p1", "LD01", D(2017, 9, 2), D(2017, 9, 1), True, False),
            ("p2", "LD01", D(2017, 9, 3), D(2017, 9, 2), True, False),
        ],
    )
    got = refs.transform(evaluation_cohort(WINDOW, D(2018, 9, 1), 12))
    assert [r.person_key for r in got.collect()] == ["p1"]


def test_window_edges_are_inclusive_for_referred_people(spark):
    refs = _refs(
        spark,
        [
            ("p1", "LD01", D(2017, 1, 1), D(2016, 12, 31), False, False),
            ("p2", "LD01", D(2017, 9, 30), D(2017, 9, 30), True, False),
            ("p3", "LD01", D(2016, 12, 31), D(2016, 12, 31), True, False),
        ],
    )
    got = refs.transform(referred_in_window(WINDOW))
    assert sorted(r.person_key for r in got.collect()) == ["p1", "p2"]


def test_historic_index_is_the_arrest_of_the_first_offence_charged_in_fy_2013_14(spark):
    evaluation = spark.createDataFrame(
        [
            ("p1", "evaluation", D(2017, 2, 1), "LD01", False),
            ("p2", "evaluation", D(2017, 3, 1), "LD02", True),
            ("p3", "evaluation", D(2017, 4, 1), "LD03", False),
        ],
        COHORT,
    )
    offences = spark.createDataFrame(
        [
            ("p1", D(2013, 9, 10), D(2013, 9, 12)),
            ("p1", D(2013, 6, 1), D(2013, 6, 2)),  # the first charged in the year: the index
            ("p1", D(2013, 3, 25), D(2013, 3, 30)),  # charged before the year began
            ("p2", D(2014, 3, 30), D(2014, 4, 2)),  # charged after it ended
            ("p2", D(2013, 12, 1), None),  # never charged
            ("p4", D(2013, 7, 1), D(2013, 7, 1)),  # not in the evaluation cohort
            ("p3", D(2014, 3, 31), D(2014, 3, 31)),  # last day of the year
        ],
        "person_key string, arrest_date date, charge_date date",
    )
    got = evaluation.transform(historic_control(FY1314, offences))
    expected = spark.createDataFrame(
        [("p1", "historic", D(2013, 6, 1), "LD01", False), ("p3", "historic", D(2014, 3, 31), "LD03", False)], COHORT
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_declined_people_stay_in_the_cohort_but_out_of_the_outcome_analysis(spark):
    evaluation = spark.createDataFrame(
        [
            ("p1", "evaluation", D(2017, 2, 1), "LD01", False),
            ("p2", "evaluation", D(2017, 3, 1), "LD02", True),
            ("p3", "evaluation", D(2017, 3, 1), "LD02", None),
        ],
        COHORT,
    )
    historic = spark.createDataFrame([("p2", "historic", D(2013, 6, 1), "LD02", True)], COHORT)
    flags = {(r.person_key, r.cohort): r.in_outcomes for r in cohorts(evaluation, historic, False).collect()}
    assert flags == {
        ("p1", "evaluation"): True,
        ("p2", "evaluation"): False,
        ("p3", "evaluation"): True,
        ("p2", "historic"): False,
    }
    itt = {r.in_outcomes for r in cohorts(evaluation, historic, True).collect()}
    assert itt == {True}
