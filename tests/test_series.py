"""Month arithmetic of the event series, pinned on hand-built frames."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import types as T

from ld_spark.series import (
    in_window,
    monthly_rates,
    person_month_panel,
    self_rated_health_rows,
    with_period,
    with_rel_month,
)

D = dt.date


def _rel(spark, pairs):
    df = spark.createDataFrame(pairs, "index_date date, event_date date")
    return [r.rel_month for r in df.transform(with_rel_month("index_date", "event_date")).collect()]


def test_rel_month_counts_the_index_month_as_zero_whatever_the_day(spark):
    assert _rel(spark, [(D(2017, 3, 15), D(2017, 3, 1)), (D(2017, 3, 15), D(2017, 3, 31))]) == [0, 0]


def test_last_and_first_day_of_adjacent_months_are_one_month_apart(spark):
    assert _rel(spark, [(D(2017, 3, 31), D(2017, 4, 1)), (D(2017, 3, 1), D(2017, 2, 28))]) == [1, -1]


def test_leap_day_and_year_boundaries(spark):
    assert _rel(
        spark, [(D(2016, 2, 29), D(2016, 3, 1)), (D(2017, 1, 10), D(2016, 12, 31)), (D(2017, 1, 10), D(2015, 1, 1))]
    ) == [1, -1, -24]


def test_events_outside_the_window_are_dropped(spark):
    df = spark.createDataFrame([(-25,), (-24,), (12,), (13,)], "rel_month int")
    assert [r.rel_month for r in df.transform(in_window(-24, 12)).collect()] == [-24, 12]


INDEX = "person_key string, cohort string, index_date date"
EVENTS = "person_key string, outcome string, event_date date"


def test_person_with_no_events_gets_zero_rows_not_missing_rows(spark):
    index = spark.createDataFrame([("p1", "evaluation", D(2017, 5, 10))], INDEX)
    events = spark.createDataFrame([], EVENTS)
    panel = person_month_panel(index, events, ["ae"], -24, 12)
    rows = panel.collect()
    assert len(rows) == 37 and all(r.ae == 0 for r in rows)
    assert sorted(r.rel_month for r in rows) == list(range(-24, 13))


def test_person_in_both_cohorts_is_counted_against_each_index(spark):
    index = spark.createDataFrame([("p1", "evaluation", D(2017, 5, 10)), ("p1", "historic", D(2013, 9, 2))], INDEX)
    events = spark.createDataFrame(
        [("p1", "ae", D(2017, 5, 31)), ("p1", "ae", D(2013, 8, 30)), ("p1", "offence", D(2017, 6, 1))], EVENTS
    )
    panel = person_month_panel(index, events, ["ae", "offence"], -1, 1)
    expected = spark.createDataFrame(
        [
            ("p1", "evaluation", -1, 0, 0),
            ("p1", "evaluation", 0, 1, 0),
            ("p1", "evaluation", 1, 0, 1),
            ("p1", "historic", -1, 1, 0),
            ("p1", "historic", 0, 0, 0),
            ("p1", "historic", 1, 0, 0),
        ],
        T.StructType(
            [
                T.StructField("person_key", T.StringType()),
                T.StructField("cohort", T.StringType()),
                T.StructField("rel_month", T.IntegerType()),
                T.StructField("ae", T.LongType()),
                T.StructField("offence", T.LongType()),
            ]
        ),
    )
    assert_df_equality(panel, expected, ignore_row_order=True, ignore_nullable=True)


def test_period_is_pre_before_index_post_from_the_index_month_and_null_outside(spark):
    df = spark.createDataFrame([(-13,), (-12,), (-1,), (0,), (11,), (12,)], "rel_month int")
    got = [(r.rel_month, r.period) for r in df.transform(with_period((-12, -1), (0, 11))).collect()]
    assert got == [(-13, None), (-12, "pre"), (-1, "pre"), (0, "post"), (11, "post"), (12, None)]


def test_monthly_rates_divide_by_everyone_in_the_cohort_including_people_with_no_events(spark):
    index = spark.createDataFrame(
        [
            ("p1", "evaluation", D(2017, 5, 10)),
            ("p2", "evaluation", D(2017, 6, 1)),
            ("p3", "evaluation", D(2017, 7, 1)),
            ("p1", "historic", D(2013, 9, 2)),
        ],
        INDEX,
    )
    events = spark.createDataFrame(
        [
            ("p1", "ae", D(2017, 5, 1)),
            ("p1", "ae", D(2017, 5, 2)),
            ("p2", "ae", D(2017, 6, 30)),
            ("p1", "ae", D(2013, 9, 30)),
        ],
        EVENTS,
    )
    panel = person_month_panel(index, events, ["ae"], 0, 0)
    got = {
        (r.cohort, r.outcome): (r.persons, r.events, r.rate) for r in panel.transform(monthly_rates(["ae"])).collect()
    }
    assert got == {("evaluation", "ae"): (3, 3, 1.0), ("historic", "ae"): (1, 1, 1.0)}


def test_columns_of_the_index_other_than_its_date_are_carried_into_every_month(spark):
    index = spark.createDataFrame([("p1", "evaluation", D(2017, 5, 10), False)], INDEX + ", in_outcomes boolean")
    panel = person_month_panel(index, spark.createDataFrame([], EVENTS), ["ae"], -1, 1)
    assert panel.columns == ["person_key", "cohort", "in_outcomes", "rel_month", "ae"]
    assert [r.in_outcomes for r in panel.collect()] == [False, False, False]


def test_self_rated_health_mean_is_over_people_in_the_outcomes_and_released_to_four_decimals(spark):
    # Reviews score the mean of three 0-20 ratings: thirds. (10 + 11 + 13) / 3 / 3 = 3.7777...
    scores = spark.createDataFrame(
        [
            ("p1", "evaluation", True, -1, 10 / 3),
            ("p2", "evaluation", True, -1, 11 / 3),
            ("p3", "evaluation", True, -1, 13 / 3),
            ("p4", "evaluation", False, -1, 20.0),  # declined: not in the outcome analysis
            ("p5", "historic", True, 2, 7.0),
        ],
        "person_key string, cohort string, in_outcomes boolean, rel_month int, score double",
    )
    assert self_rated_health_rows(scores) == [
        {"cohort": "evaluation", "rel_month": -1, "reviews": 3, "mean_score": 3.7778},
        {"cohort": "historic", "rel_month": 2, "reviews": 1, "mean_score": 7.0},
    ]
