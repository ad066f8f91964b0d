"""Counts of who and what the outcome analysis leaves out, on hand-built frames."""

from __future__ import annotations

import datetime as dt

from ld_spark.cohorts import evaluation_cohort
from ld_spark.descriptives import cohort_sizes, referral_flow, size_rows, untimed_cases

D = dt.date
WINDOW = (D(2017, 1, 1), D(2017, 9, 30))
REFERRALS = "person_key string, referral_date date, consent boolean, index_offence_date date, site_code string, declined boolean"
CASES = (
    "cohort string, in_outcomes boolean, justice_followed boolean, period string, completed boolean, "
    "duration_days int, arrest_to_sentence_days int, sentence_observed boolean, clock_period string"
)


def _counts(rows: list[dict]) -> dict[str, int]:
    return {r["estimand"]: r["estimate"] for r in rows}


def test_the_referral_flow_counts_each_step_that_leaves_people_out(spark):
    refs = spark.createDataFrame(
        [
            ("a", D(2017, 2, 1), True, D(2017, 1, 30), "LD01", False),  # in the cohort
            ("b", D(2017, 3, 1), False, D(2017, 3, 1), "LD01", False),  # never consented
            ("b", D(2017, 4, 1), None, D(2017, 4, 1), "LD01", False),  # (a blank consent is not consent)
            ("c", D(2017, 3, 1), True, None, "LD01", False),  # consented, no index date anywhere
            ("d", D(2017, 3, 1), True, None, "LD01", False),  # consented twice, one with its index date: in
            ("d", D(2017, 5, 1), True, D(2017, 4, 29), "LD01", False),
            ("e", D(2017, 9, 20), True, D(2017, 9, 19), "LD01", False),  # followed only to 2018-09-19 > end
            ("f", D(2016, 12, 31), True, D(2016, 12, 30), "LD01", False),  # outside the window: not referred there
        ],
        REFERRALS,
    )
    # The evaluation cohort (cohorts.evaluation_cohort, to 2018-08-31 with 12 months' follow-up)
    # holds a and d: e's index + 12 months is after the end.
    assert refs.transform(evaluation_cohort(WINDOW, D(2018, 8, 31), 12)).count() == 2
    got = _counts(referral_flow(refs, WINDOW, n_evaluation=2))
    assert got == {
        "n_referred_in_window": 5,
        "n_not_consenting": 1,
        "n_consenting_without_index_date": 1,
        "n_follow_up_short": 1,
    }


def test_untimed_cases_are_counted_among_the_justice_cases_only(spark):
    cases = spark.createDataFrame(
        [
            ("evaluation", True, True, "post", True, 30, 40, True, "post"),  # timed both ways
            ("evaluation", True, True, "post", True, None, None, True, "post"),  # neither
            ("historic", True, True, "pre", False, None, 100, False, "pre"),  # open, never heard
            ("historic", True, True, "pre", False, 10, None, False, "pre"),  # open, no arrest found
            ("historic", True, True, "pre", True, 12, None, False, "pre"),  # acquitted: no sentence to time
            ("historic", True, False, "pre", True, None, None, True, "pre"),  # not justice-followed
            ("historic", False, True, "pre", True, None, None, True, "pre"),  # declined
            (
                "historic",
                True,
                True,
                None,
                True,
                None,
                None,
                True,
                "post",
            ),  # outside the rules' periods, in its own month's
        ],
        CASES,
    )
    assert _counts(untimed_cases(cases)) == {"n_cases_untimed_court": 2, "n_cases_untimed_sentence": 2}
    # The plain specification's cases: everyone in the outcome analysis, by each case's own month.
    assert _counts(untimed_cases(cases, "plain")) == {"n_cases_untimed_court": 4, "n_cases_untimed_sentence": 4}


def test_cohort_sizes_count_people_and_those_not_followed_and_find_the_first_index(spark):
    schema = "person_key string, cohort string, index_date date, justice_followed boolean"
    index = spark.createDataFrame(
        [
            ("p1", "evaluation", D(2017, 3, 2), True),
            ("p2", "evaluation", D(2016, 12, 5), False),
            ("p3", "evaluation", D(2017, 6, 1), None),  # not known: not counted as not followed
            ("p1", "historic", D(2014, 1, 9), True),  # earlier, but the other cohort's
        ],
        schema,
    )
    sizes = cohort_sizes(index)
    assert sizes["evaluation"]["first_index"] == D(2016, 12, 5)
    assert [(r["estimand"], r["estimate"], r["n"]) for r in size_rows(sizes)] == [
        ("n_evaluation", 3, 3),
        ("n_historic", 1, 1),
        ("n_justice_not_followed_evaluation", 1, 1),
        ("n_justice_not_followed_historic", 0, 0),
    ]
    # No one in the cohort index: every count is 0, and there is no first index.
    empty = cohort_sizes(spark.createDataFrame([], schema))
    assert empty == {}
    assert [(r["estimate"], r["n"]) for r in size_rows(empty)] == [(0, 0)] * 4
