"""Offence and court-case tables around the index, on hand-built frames."""
from __future__ import annotations

import datetime as dt

from ld_spark.justice import arrest_dates, cohort_cases, cohort_offences, hearing_counts

D = dt.date
SERIES, PRE, POST = (-24, 12), (-12, -1), (0, 11)
OFFENCES = ("person_key string, offence_date date, arrest_date date, charge_date date, offence_category string, "
            "disposal_date date, disposal_code string, custodial_days int")


def _cohorts(spark):
    return spark.createDataFrame([("p1", "evaluation", D(2017, 3, 10), True), ("p1", "historic", D(2013, 6, 1), True)],
                                 "person_key string, cohort string, index_date date, in_outcomes boolean")


def test_offences_carry_cohort_period_and_custody_and_lose_those_without_disposal(spark):
    offences = spark.createDataFrame([
        ("p1", D(2017, 3, 1), D(2017, 3, 10), D(2017, 3, 11), "CE", D(2017, 6, 1), "1002", 180),  # month 0, custody
        ("p1", D(2017, 1, 31), D(2017, 2, 1), D(2017, 2, 2), "CS", D(2017, 4, 1), "1116", 99),    # month -2
        ("p1", D(2016, 12, 1), D(2016, 12, 1), D(2016, 12, 2), "CS", D(2017, 1, 5), "2063", None),  # withdrawn
        ("p1", D(2017, 5, 1), D(2017, 5, 1), None, "CM", None, None, None),                        # no disposal
        ("p1", D(2013, 5, 20), D(2013, 5, 21), D(2013, 5, 22), "CE", D(2013, 9, 1), "1024", 90),  # historic -1
    ], OFFENCES)
    got = {(r.cohort, r.rel_month): r for r in offences.transform(cohort_offences(_cohorts(spark), SERIES, PRE, POST)).collect()}
    assert set(got) == {("evaluation", 0), ("evaluation", -2), ("evaluation", -3), ("historic", -1)}
    assert (got["evaluation", 0].period, got["evaluation", 0].custodial, got["evaluation", 0].custodial_days) == ("post", True, 180)
    # A community order is a sentence, not custody; a custodial_days value on it is not kept.
    assert (got["evaluation", -2].sentenced, got["evaluation", -2].custodial, got["evaluation", -2].custodial_days) == (True, False, None)
    assert (got["evaluation", -3].sentenced, got["evaluation", -3].period) == (False, "pre")
    assert got["historic", -1].custodial and got["historic", -1].period == "pre"


def test_court_case_timeliness_hearings_and_arrest_to_sentence(spark):
    cases = spark.createDataFrame([
        ("K1", "p1", "XHIBIT", D(2017, 3, 1), D(2017, 3, 11), D(2017, 3, 20), D(2017, 5, 19), "convicted", D(2017, 5, 19)),
        ("K2", "p1", "LIBRA", D(2017, 4, 2), D(2017, 4, 3), D(2017, 4, 10), None, None, None),
    ], "case_id string, person_key string, source_system string, offence_date date, charge_date date, "
       "first_hearing_date date, completion_date date, case_outcome string, sentence_date date")
    hearings = spark.createDataFrame([("H1", "K1", True), ("H2", "K1", True), ("H3", "K1", False),
                                      ("H4", "K2", None)], "hearing_id string, case_id string, adjourned boolean")
    offences = spark.createDataFrame([("p1", D(2017, 3, 1), D(2017, 3, 10), D(2017, 3, 11)),
                                      ("p1", D(2017, 3, 1), D(2017, 3, 9), D(2017, 3, 11))],   # same dates: earliest
                                     "person_key string, offence_date date, arrest_date date, charge_date date")
    index = _cohorts(spark).filter("cohort = 'evaluation'")
    got = {r.rel_month: r for r in cases.transform(
        cohort_cases(index, hearing_counts(hearings), arrest_dates(offences), SERIES, PRE, POST)).collect()}
    k1, k2 = got[0], got[1]
    assert (k1.duration_days, k1.hearings, k1.adjournments, k1.completed) == (60, 3, 2, True)
    assert k1.arrest_to_sentence_days == 71          # from the earlier of the two matching arrests
    assert "arrest_date" not in cases.transform(
        cohort_cases(index, hearing_counts(hearings), arrest_dates(offences), SERIES, PRE, POST)).columns
    assert (k2.completed, k2.duration_days, k2.hearings, k2.adjournments, k2.arrest_to_sentence_days) == (False, None, 1, 0, None)
