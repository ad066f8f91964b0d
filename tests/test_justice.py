"""The proven-reoffending rules of contract section 4, on hand-built frames."""

from __future__ import annotations

import datetime as dt

import pytest

from ld_spark.justice import (
    case_offences,
    classified_cases,
    cohort_cases,
    cohort_offences,
    committals,
    hearing_counts,
    index_offences,
    months_at_risk,
    offence_events,
    with_justice_follow_up,
)

D = dt.date
SERIES, PRE, POST, WAIT = (-24, 12), (-12, -1), (0, 11), 6
OFFENCES = (
    "person_key string, offence_id string, offence_date date, arrest_date date, charge_date date, "
    "offence_category string, disposal_date date, disposal_code string, custodial_days int"
)
CASES = (
    "case_id string, person_key string, source_system string, offence_date date, charge_date date, "
    "first_hearing_date date, completion_date date, case_outcome string, sentence_date date"
)
HEARINGS = "hearing_id string, case_id string, hearing_date date, adjourned boolean"
END = D(2019, 6, 30)


def _cohorts(spark, historic_index=D(2013, 6, 3)):
    return spark.createDataFrame(
        [("p1", "evaluation", D(2017, 3, 10), True, True), ("p1", "historic", historic_index, True, True)],
        "person_key string, cohort string, index_date date, in_outcomes boolean, justice_followed boolean",
    )


def _classified(spark, rows, cohorts=None):
    cohorts = cohorts or _cohorts(spark)
    offences = spark.createDataFrame(rows, OFFENCES)
    ids = offences.transform(index_offences(cohorts, 7))
    got = offences.transform(cohort_offences(cohorts, ids, SERIES, PRE, POST, WAIT))
    return ids, got


def _court_cases(cohorts, ids, offences, cases, hearings, end):
    """cohort_cases with the contract's windows, 365 days' horizon and 7 days' tolerance."""
    offences_of_cases = case_offences(cases, offences, ids, 7)
    counted = hearing_counts(hearings, cases, 365)
    return cases.transform(cohort_cases(cohorts, ids, counted, offences_of_cases, end, SERIES, PRE, POST, 365))


def test_historic_index_offence_weeks_before_its_arrest_sits_in_month_0_and_is_no_reoffence(spark):
    # Committed 2013-04-24, arrested 40 days later on 2013-06-03 (the historic index date):
    # its offence month is -2, but it is the index offence, so month 0, and not a re-offence.
    rows = [
        ("O1", D(2013, 4, 24), D(2013, 6, 3), D(2013, 6, 4), "CE", D(2013, 9, 1), "1002", 120),
        ("O2", D(2013, 4, 24), D(2013, 4, 25), D(2013, 4, 26), "CS", D(2013, 7, 1), "1116", None),
    ]
    ids, got = _classified(spark, [("p1", *r) for r in rows])
    hist = {r.offence_category: r for r in got.filter("cohort = 'historic'").collect()}
    assert [(r.cohort, r.offence_id) for r in ids.collect()] == [("historic", "O1")]
    assert (hist["CE"].rel_month, hist["CE"].period, hist["CE"].index_offence) == (0, "post", True)
    # Its disposal counts in the post period for custody...
    assert (hist["CE"].proven, hist["CE"].custodial, hist["CE"].custodial_days) == (True, True, 120)
    # ...but it is neither a re-offence nor a police contact; the same day's other offence is.
    assert not hist["CE"].police_contact
    assert (hist["CS"].rel_month, hist["CS"].period, hist["CS"].index_offence, hist["CS"].proven) == (
        -2,
        "pre",
        False,
        True,
    )
    events = {(r.cohort, r.outcome, r.rel_month) for r in offence_events(got).collect()}
    assert ("historic", "offences", -2) in events and ("historic", "offences", 0) not in events


def test_evaluation_index_offence_is_the_arrest_nearest_the_index_date_within_the_tolerance(spark):
    cohorts = _cohorts(spark).filter("cohort = 'evaluation'")  # index 2017-03-10
    rows = [
        ("E1", D(2017, 3, 5), D(2017, 3, 5), None, "CS", None, None, None),  # 5 days before
        ("E2", D(2017, 3, 12), D(2017, 3, 13), None, "CS", None, None, None),  # 3 days after
        ("E3", D(2017, 3, 10), D(2017, 3, 18), None, "CS", None, None, None),
    ]  # arrested 8 days after
    offences = spark.createDataFrame([("p1", *r) for r in rows], OFFENCES)
    assert [r.offence_id for r in offences.transform(index_offences(cohorts, 7)).collect()] == ["E2"]
    # Without an arrest near the index, the offence on it is the index ("the arrest/offence that
    # led to the referral"); one whose dates are both more than 7 days away is not.
    late_arrest = offences.filter("offence_id = 'E3'")
    assert [r.offence_id for r in late_arrest.transform(index_offences(cohorts, 7)).collect()] == ["E3"]
    far = spark.createDataFrame([("p1", "E4", D(2017, 3, 1), D(2017, 3, 20), None, "CS", None, None, None)], OFFENCES)
    assert far.transform(index_offences(cohorts, 7)).count() == 0


def test_a_conviction_counts_only_within_six_months_after_its_period_ends(spark):
    # Evaluation index March 2017: post months 0..11 end in February 2018; waiting to 2018-08-31.
    rows = [
        ("A", D(2018, 2, 20), D(2018, 2, 20), D(2018, 2, 21), "CE", D(2018, 8, 31), "1015", None),  # last day
        ("B", D(2018, 2, 20), D(2018, 2, 20), D(2018, 2, 21), "CE", D(2018, 9, 1), "1015", None),  # a day late
        ("C", D(2017, 5, 2), D(2017, 5, 2), D(2017, 5, 3), "CE", D(2018, 8, 1), "2063", None),  # withdrawn
        ("D", D(2017, 5, 2), D(2017, 5, 2), None, "CM", None, None, None),  # no charge
        # Pre months -12..-1 end in February 2017: waiting to 2017-08-31, for an offence in any pre month.
        ("F", D(2016, 4, 1), D(2016, 4, 1), D(2016, 4, 2), "CS", D(2017, 8, 31), "1018", None),
        ("G", D(2017, 2, 1), D(2017, 2, 1), D(2017, 2, 2), "CS", D(2017, 9, 1), "1002", 30),
    ]
    _, got = _classified(spark, [("p1", *r) for r in rows])
    ev = got.filter("cohort = 'evaluation'").collect()
    assert sorted((r.rel_month, r.proven, r.police_contact) for r in ev) == [
        (-11, True, False),
        (-1, False, True),  # F in time, G late
        (2, False, True),
        (2, False, True),  # withdrawn, not charged
        (11, False, True),
        (11, True, False),
    ]  # A proven, B only a contact
    late_custody = next(r for r in ev if r.rel_month == -1)
    assert (late_custody.convicted, late_custody.sentenced, late_custody.custodial) == (True, False, False)
    counts = {}
    for r in offence_events(got.filter("cohort = 'evaluation'")).collect():
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    assert counts == {"offences": 2, "police_contacts": 4}


def test_a_conviction_without_a_charge_is_a_police_contact_not_a_proven_offence(spark):
    # Contract: "PNC records with no charge, or with no conviction, are not offences" - even with
    # a conviction code disposed in time (a summons, say). The same record charged is proven.
    rows = [
        ("S", D(2017, 5, 2), D(2017, 5, 2), None, "CM", D(2017, 8, 1), "1002", 30),
        ("T", D(2017, 6, 6), D(2017, 6, 6), D(2017, 6, 7), "CM", D(2017, 8, 1), "1002", 30),
    ]
    _, got = _classified(spark, [("p1", *r) for r in rows])
    ev = sorted(got.filter("cohort = 'evaluation'").collect(), key=lambda r: r.rel_month)
    assert [(r.rel_month, r.proven, r.police_contact, r.sentenced, r.custodial) for r in ev] == [
        (2, False, True, False, False),
        (3, True, False, True, True),
    ]
    events = sorted((r.outcome, r.rel_month) for r in offence_events(got.filter("cohort = 'evaluation'")).collect())
    assert events == [("offences", 3), ("police_contacts", 2)]


def test_a_disposal_without_a_code_is_a_police_contact_not_a_lost_record(spark):
    # Disposed in time but the code is missing (or not in the contract's list): no conviction,
    # so a police contact; never null, which would count it as neither.
    rows = [
        ("N", D(2017, 5, 2), D(2017, 5, 2), D(2017, 5, 3), "CE", D(2017, 9, 1), None, None),
        ("U", D(2017, 5, 9), D(2017, 5, 9), D(2017, 5, 10), "CE", D(2017, 9, 1), "9999", 40),
    ]
    _, got = _classified(spark, [("p1", *r) for r in rows])
    ev = sorted(got.filter("cohort = 'evaluation'").collect(), key=lambda r: r.offence_category + str(r.rel_month))
    assert [(r.proven, r.police_contact, r.convicted, r.custodial, r.custodial_code) for r in ev] == [
        (False, True, False, False, False)
    ] * 2
    assert [r.outcome for r in offence_events(got.filter("cohort = 'evaluation'")).collect()] == ["police_contacts"] * 2


def test_justice_follow_up_needs_the_post_period_and_the_waiting_period_before_the_end(spark):
    cohorts = spark.createDataFrame(
        [("p1", "evaluation", D(2017, 9, 15))], "person_key string, cohort string, index_date date"
    )
    # Months 0..11 end 2018-08-31; six months' waiting: 2019-02-28.
    assert cohorts.transform(with_justice_follow_up(D(2019, 2, 28), POST, WAIT)).first().justice_followed
    assert not cohorts.transform(with_justice_follow_up(D(2019, 2, 27), POST, WAIT)).first().justice_followed


def test_custody_days_and_days_after_the_extract_end_come_off_the_months_at_risk(spark):
    cohorts = _cohorts(spark).filter("cohort = 'evaluation'")  # index March 2017
    rows = [
        ("K1", D(2017, 3, 1), D(2017, 3, 1), D(2017, 3, 2), "CE", D(2017, 4, 16), "1002", 60),  # 30 days served
        ("K2", D(2017, 3, 1), D(2017, 3, 1), D(2017, 3, 2), "CE", D(2017, 4, 20), "1024", 10),  # inside K1's stay
        ("K3", D(2017, 3, 1), D(2017, 3, 1), D(2017, 3, 2), "CE", D(2017, 4, 1), "1116", 99),
    ]  # not custody
    offences = spark.createDataFrame([("p1", *r) for r in rows], OFFENCES)
    got = {
        r.rel_month: r.at_risk
        for r in offences.transform(months_at_risk(cohorts, D(2018, 2, 10), 0.5, SERIES)).collect()
    }
    assert len(got) == 37
    assert got[1] == pytest.approx(15 / 30)  # 16-30 April in custody
    assert got[2] == pytest.approx(16 / 31)  # 1-15 May in custody
    assert got[0] == 1.0 and got[3] == 1.0
    assert got[11] == pytest.approx(10 / 28)  # February 2018: the extract ends on the 10th
    assert got[12] == 0.0


def test_open_cases_are_censored_at_the_extract_end_and_the_index_case_sits_in_month_0(spark):
    cohorts = _cohorts(spark)
    offences = spark.createDataFrame(
        [
            ("p1", "O1", D(2013, 4, 24), D(2013, 6, 3), D(2013, 6, 4), "CE", None, None, None),  # historic index
            ("p1", "O2", D(2017, 4, 2), D(2017, 4, 2), D(2017, 4, 3), "CS", None, None, None),
            ("p1", "O3", D(2017, 3, 1), D(2017, 3, 10), D(2017, 3, 11), "CE", None, None, None),  # evaluation index
            ("p1", "O4", D(2017, 3, 1), D(2017, 3, 9), D(2017, 3, 11), "CE", None, None, None),
        ],  # same dates, earlier
        OFFENCES,
    )
    cases = spark.createDataFrame(
        [
            (
                "K1",
                "p1",
                "XHIBIT",
                D(2013, 4, 24),
                D(2013, 6, 4),
                D(2013, 6, 20),
                D(2014, 1, 10),
                "convicted",
                D(2014, 1, 10),
            ),
            ("K2", "p1", "LIBRA", D(2017, 4, 2), D(2017, 4, 3), D(2017, 4, 10), None, None, None),
            ("K3", "p1", "XHIBIT", D(2017, 3, 1), D(2017, 3, 11), D(2017, 3, 20), D(2017, 5, 19), "acquitted", None),
        ],
        CASES,
    )
    hearings = spark.createDataFrame(
        [
            ("H1", "K1", D(2013, 6, 20), True),
            ("H2", "K1", D(2013, 9, 1), True),
            ("H3", "K1", D(2014, 1, 10), False),
            ("H4", "K2", D(2017, 4, 10), None),
            ("H5", "K2", D(2018, 4, 11), True),
        ],  # 366 days after the first
        HEARINGS,
    )
    ids = offences.transform(index_offences(cohorts, 7))
    end = D(2018, 1, 31)
    got = {(r.cohort, r.rel_month): r for r in _court_cases(cohorts, ids, offences, cases, hearings, end).collect()}
    # The historic index case (offence two months before the arrest) is month 0, post.
    k1 = got["historic", 0]
    assert (k1.index_offence, k1.period, k1.duration_days, k1.duration_observed) == (True, "post", 204, True)
    assert (k1.hearings, k1.adjournments, k1.arrest_to_sentence_days, k1.sentence_observed) == (3, 2, 221, True)
    # Open: duration and arrest-to-sentence run to the extract's end, censored; not dropped.
    k2 = got["evaluation", 1]
    assert (k2.completed, k2.duration_days, k2.duration_observed) == (False, 296, False)
    assert (k2.arrest_to_sentence_days, k2.sentence_observed) == (304, False)
    # A hearing after 365 days is outside the window; the window is not yet complete at the end.
    assert (k2.hearings, k2.adjournments, k2.hearings_observed) == (1, 0, False)
    # Acquitted: a completed duration, and no arrest-to-sentence time at all.
    k3 = got["evaluation", 0]
    assert (k3.index_offence, k3.duration_days, k3.arrest_to_sentence_days) == (True, 60, None)
    assert "arrest_date" not in _court_cases(cohorts, ids, offences, cases, hearings, end).columns


def test_the_historic_charge_window_before_the_index_is_not_time_at_risk(spark):
    cohorts = _cohorts(spark)  # historic index 2013-06-03
    offences = spark.createDataFrame([], OFFENCES)
    got = {
        (r.cohort, r.rel_month): r.at_risk
        for r in offences.transform(
            months_at_risk(cohorts, D(2019, 6, 30), 0.5, SERIES, {"historic": D(2013, 4, 1)})
        ).collect()
    }
    # April and May 2013 lie wholly in the window before the arrest; June up to the 3rd.
    assert (got["historic", -3], got["historic", -2], got["historic", -1]) == (1.0, 0.0, 0.0)
    assert got["historic", 0] == pytest.approx(28 / 30)
    assert all(v == 1.0 for (c, _), v in got.items() if c == "evaluation")


def test_a_case_finds_its_offence_without_the_same_charge_date_and_one_without_a_first_hearing_is_counted(spark):
    cohorts = _cohorts(spark)
    offences = spark.createDataFrame(
        [
            ("p1", "O1", D(2013, 4, 24), D(2013, 6, 3), D(2013, 6, 4), "CE", None, None, None),  # historic index
            ("p1", "O2", D(2013, 4, 24), D(2013, 4, 25), D(2013, 4, 26), "CS", None, None, None),  # arrested earlier
            ("p1", "O2U", D(2013, 4, 24), D(2013, 4, 24), None, "CS", None, None, None),  # not charged
            ("p1", "O5", D(2017, 6, 1), D(2017, 6, 1), D(2017, 6, 2), "CS", None, None, None),
            ("p1", "O6", D(2017, 6, 1), D(2017, 6, 4), D(2017, 6, 4), "CS", None, None, None),
            # No index among them: a charged offence first, then the earliest arrest, one unknown last.
            ("p1", "O7", D(2017, 8, 1), D(2017, 8, 10), None, "CS", None, None, None),
            ("p1", "O8", D(2017, 8, 1), D(2017, 8, 12), D(2017, 8, 12), "CS", None, None, None),
            ("p1", "O9", D(2017, 8, 1), None, D(2017, 8, 13), "CS", None, None, None),
        ],
        OFFENCES,
    )
    cases = spark.createDataFrame(
        [
            # A summons: no charge date in HMCTS to compare. Still the historic index's case (not
            # O2's, arrested earlier the same day, nor O2U's, which has no charge date either):
            # month 0, and its arrest found.
            ("C1", "p1", "XHIBIT", D(2013, 4, 24), None, D(2013, 6, 20), D(2014, 1, 10), "convicted", D(2014, 1, 10)),
            # Charged a day after O5 and a day before O6 by the court's clock: the earlier arrest,
            # O5's. Open, and not yet heard.
            ("C2", "p1", "LIBRA", D(2017, 6, 1), D(2017, 6, 3), None, None, None, None),
            # Nearest O6 (1 day) rather than O5 (3 days); and 27 days or more from both: none.
            ("C3", "p1", "LIBRA", D(2017, 6, 1), D(2017, 6, 5), None, None, None, None),
            ("C4", "p1", "LIBRA", D(2017, 6, 1), D(2017, 7, 1), None, None, None, None),
            ("C5", "p1", "LIBRA", D(2017, 8, 1), None, None, None, None, None),
        ],
        CASES,
    )
    hearings = spark.createDataFrame([], HEARINGS)
    ids = offences.transform(index_offences(cohorts, 7))
    found = {r.case_id: (r.offence_id, r.arrest_date) for r in case_offences(cases, offences, ids, 7).collect()}
    assert found == {
        "C1": ("O1", D(2013, 6, 3)),
        "C2": ("O5", D(2017, 6, 1)),
        "C3": ("O6", D(2017, 6, 4)),
        "C5": ("O8", D(2017, 8, 12)),
    }
    cases = cases.filter("case_id IN ('C1', 'C2')")
    rows = _court_cases(cohorts, ids, offences, cases, hearings, D(2018, 1, 31)).collect()
    assert len(rows) == 2  # one row per case and cohort
    got = {r.cohort: r for r in rows}
    c1 = got["historic"]
    assert (c1.index_offence, c1.rel_month, c1.period, c1.duration_days, c1.arrest_to_sentence_days) == (
        True,
        0,
        "post",
        204,
        221,
    )
    # No first hearing: no duration and no hearing window to observe - false, never null (a null
    # mask stopped the effects stage); its arrest-to-sentence time is still censored at the end.
    c2 = got["evaluation"]
    assert (c2.rel_month, c2.duration_days, c2.hearings_observed, c2.arrest_to_sentence_days) == (3, None, False, 244)


def test_a_case_committed_to_the_crown_court_is_timed_with_its_crown_case_and_alone_is_censored(spark, config):
    # MoJ times a case sent to the Crown Court from its first listing at the magistrates' court
    # to its completion at the Crown Court: M1 and X1 are one case of the evaluation index offence.
    cohorts = _cohorts(spark)
    offences = spark.createDataFrame(
        [
            ("p1", "O3", D(2017, 3, 1), D(2017, 3, 10), D(2017, 3, 11), "CE", D(2017, 9, 1), "1002", 90),
            ("p1", "O5", D(2017, 6, 1), D(2017, 6, 1), D(2017, 6, 2), "CE", None, None, None),
        ],
        OFFENCES,
    )
    cases = spark.createDataFrame(
        [
            ("M1", "p1", "LIBRA", D(2017, 3, 1), D(2017, 3, 11), D(2017, 3, 20), D(2017, 4, 10), "committed", None),
            (
                "X1",
                "p1",
                "XHIBIT",
                D(2017, 3, 1),
                D(2017, 3, 11),
                D(2017, 5, 1),
                D(2017, 9, 1),
                "convicted",
                D(2017, 9, 1),
            ),
            # Committed, and its Crown case not in the extract: not ended, so censored at its committal.
            ("M2", "p1", "LIBRA", D(2017, 6, 1), D(2017, 6, 2), D(2017, 6, 10), D(2017, 6, 20), "committed", None),
        ],
        CASES,
    )
    hearings = spark.createDataFrame(
        [
            ("H1", "M1", D(2017, 3, 20), True),
            ("H2", "M1", D(2017, 4, 10), False),
            ("H3", "X1", D(2017, 5, 1), True),
            ("H4", "X1", D(2017, 9, 1), False),
            ("H5", "M2", D(2017, 6, 10), False),
        ],
        HEARINGS,
    )
    ids = offences.transform(index_offences(cohorts, 7))
    found = case_offences(cases, offences, ids, 7)
    assert [tuple(r) for r in committals(cases, found).collect()] == [("M1", "X1")]
    analysis = config.analysis.model_copy(update={"restricted_mean_days": 365})
    got = {
        r.rel_month: r
        for r in cases.transform(classified_cases(cohorts, ids, offences, hearings, D(2018, 1, 31), analysis))
        .filter("cohort = 'evaluation'")
        .collect()
    }
    assert sorted(got) == [0, 3]  # M1 is part of X1 now
    every = cases.transform(classified_cases(cohorts, ids, offences, hearings, D(2018, 1, 31), analysis))
    assert every.filter("cohort = 'evaluation'").count() == 2  # one row per case
    x1 = got[0]
    assert (x1.index_offence, x1.completed, x1.duration_days, x1.duration_observed) == (True, True, 165, True)
    assert (x1.hearings, x1.adjournments, x1.arrest_to_sentence_days, x1.sentence_observed) == (4, 2, 175, True)
    m2 = got[3]
    assert (m2.completed, m2.duration_days, m2.duration_observed) == (False, 10, False)
    assert (m2.hearings, m2.arrest_to_sentence_days, m2.sentence_observed) == (1, 19, False)


def test_a_crown_case_committed_on_does_not_continue_a_committal_and_a_lone_committal_counts_no_hearings(spark, config):
    cohorts = _cohorts(spark)
    offences = spark.createDataFrame(
        [
            ("p1", "O7", D(2017, 7, 1), D(2017, 7, 1), D(2017, 7, 2), "CI", None, None, None),
            ("p1", "O9", D(2017, 9, 1), D(2017, 9, 1), D(2017, 9, 2), "CE", None, None, None),
        ],
        OFFENCES,
    )
    cases = spark.createDataFrame(
        [
            # M3 and X3 (a Crown case committed on in its turn) both continue in X4, first heard
            # latest of the three: one case from M3's first listing to X4's completion.
            ("M3", "p1", "LIBRA", D(2017, 7, 1), D(2017, 7, 2), D(2017, 7, 3), D(2017, 7, 20), "committed", None),
            ("X3", "p1", "XHIBIT", D(2017, 7, 1), D(2017, 7, 2), D(2017, 7, 10), D(2017, 8, 1), "committed", None),
            ("X4", "p1", "XHIBIT", D(2017, 7, 1), D(2017, 7, 2), D(2017, 8, 15), D(2017, 12, 1), "convicted", None),
            # Its Crown case not found: its 365 days are past by the end, but its Crown hearings are
            # missing, so it is not in the hearings per case.
            ("M5", "p1", "LIBRA", D(2017, 9, 1), D(2017, 9, 2), D(2017, 9, 5), D(2017, 9, 20), "committed", None),
        ],
        CASES,
    )
    hearings = spark.createDataFrame(
        [
            ("H1", "M3", D(2017, 7, 3), True),
            ("H2", "X3", D(2017, 7, 10), True),
            ("H3", "X4", D(2017, 8, 15), False),
            ("H4", "X4", D(2017, 12, 1), False),
            ("H5", "M5", D(2017, 9, 5), False),
        ],
        HEARINGS,
    )
    ids = offences.transform(index_offences(cohorts, 7))
    found = case_offences(cases, offences, ids, 7)
    assert sorted(tuple(r) for r in committals(cases, found).collect()) == [("M3", "X4"), ("X3", "X4")]
    rows = (
        cases.transform(classified_cases(cohorts, ids, offences, hearings, D(2019, 6, 30), config.analysis))
        .filter("cohort = 'evaluation'")
        .collect()
    )
    got = {r.rel_month: r for r in rows}
    assert len(rows) == 2 and sorted(got) == [4, 6]
    x4 = got[4]
    assert (x4.duration_days, x4.duration_observed, x4.hearings, x4.adjournments, x4.hearings_observed) == (
        151,
        True,
        4,
        2,
        True,
    )
    m5 = got[6]
    assert (m5.duration_days, m5.duration_observed, m5.hearings_observed) == (15, False, False)


def test_clocks_that_cannot_time_a_case_give_no_time_and_one_not_yet_begun_is_censored_at_0(spark, config):
    cohorts = _cohorts(spark)  # evaluation index 2017-03-10
    offences = spark.createDataFrame(
        [
            ("p1", "O1", D(2017, 4, 1), D(2017, 4, 1), D(2017, 4, 2), "CS", None, None, None),
            ("p1", "O2", D(2017, 5, 1), D(2017, 5, 1), D(2017, 5, 2), "CS", None, None, None),
            ("p1", "O3", D(2017, 6, 1), D(2017, 6, 20), D(2017, 6, 20), "CS", None, None, None),
            ("p1", "O4", D(2017, 7, 1), D(2017, 7, 1), D(2017, 7, 2), "CS", None, None, None),
            ("p1", "O5", D(2017, 8, 1), D(2017, 8, 1), D(2017, 8, 2), "CS", None, None, None),
            ("p1", "O6", D(2017, 9, 1), D(2017, 9, 1), D(2017, 9, 2), "CE", None, None, None),
        ],
        OFFENCES,
    )
    cases = spark.createDataFrame(
        [
            # No first hearing date in the case record: its earliest hearing's (May 20), not its later one's.
            ("K1", "p1", "LIBRA", D(2017, 4, 1), D(2017, 4, 2), None, D(2017, 6, 9), "convicted", D(2017, 6, 9)),
            # Completed before its first hearing by the court's own clocks: no court time.
            ("K2", "p1", "LIBRA", D(2017, 5, 1), D(2017, 5, 2), D(2017, 6, 1), D(2017, 5, 20), "convicted", None),
            # Sentenced 5 days before the PNC's arrest: no arrest-to-sentence time.
            (
                "K3",
                "p1",
                "LIBRA",
                D(2017, 6, 1),
                D(2017, 6, 20),
                D(2017, 6, 10),
                D(2017, 6, 15),
                "convicted",
                D(2017, 6, 15),
            ),
            # Open, first listed after the extract's end: had not begun there, censored at 0 days.
            ("K4", "p1", "XHIBIT", D(2017, 7, 1), D(2017, 7, 2), D(2018, 2, 5), None, None, None),
            # Open and never heard: no first hearing anywhere, so no court time; still waiting for sentence.
            ("K5", "p1", "LIBRA", D(2017, 8, 1), D(2017, 8, 2), None, None, None, None),
            # Committed (its Crown case not found) ten days before its first hearing: no court
            # time, not 0; its arrest-to-sentence time is censored at the committal.
            ("K6", "p1", "LIBRA", D(2017, 9, 1), D(2017, 9, 2), D(2017, 9, 20), D(2017, 9, 10), "committed", None),
        ],
        CASES,
    )
    hearings = spark.createDataFrame(
        [("H1", "K1", D(2017, 6, 9), False), ("H2", "K1", D(2017, 5, 20), True), ("H3", "K5", None, False)],
        HEARINGS,
    )
    ids = offences.transform(index_offences(cohorts, 7))
    end = D(2018, 1, 31)
    got = {
        r.rel_month: r
        for r in cases.transform(classified_cases(cohorts, ids, offences, hearings, end, config.analysis))
        .filter("cohort = 'evaluation'")
        .collect()
    }
    k1, k2, k3, k4, k5, k6 = (got[m] for m in (1, 2, 3, 4, 5, 6))
    assert (k1.duration_days, k1.duration_observed, k1.hearings, k1.adjournments) == (20, True, 2, 1)
    assert (k2.duration_days, k2.completed, k2.arrest_to_sentence_days) == (None, True, None)
    assert (k3.duration_days, k3.arrest_to_sentence_days, k3.sentence_observed) == (5, None, True)
    assert (k4.duration_days, k4.duration_observed, k4.arrest_to_sentence_days) == (0, False, 214)
    assert (k5.duration_days, k5.hearings_observed, k5.arrest_to_sentence_days) == (None, False, 183)
    assert (k6.duration_days, k6.completed, k6.arrest_to_sentence_days, k6.sentence_observed) == (None, False, 9, False)
