"""What reaches the estimators: the justice frames under the rules and under the plain specification."""

from __future__ import annotations

from ld_spark.effects import justice_frames

OFFENCES = (
    "person_key string, cohort string, in_outcomes boolean, justice_followed boolean, rel_month int, "
    "period string, clock_rel_month int, clock_period string, index_offence boolean, convicted boolean, "
    "custodial_code boolean, sentenced boolean, custodial boolean, custodial_days int, "
    "sentencing_occasion int"
)
CASES = (
    "person_key string, cohort string, in_outcomes boolean, justice_followed boolean, rel_month int, "
    "period string, clock_rel_month int, clock_period string, completed boolean, duration_days int, "
    "duration_observed boolean, hearings long, adjournments long, hearings_observed boolean, hearings_all long, "
    "adjournments_all long, arrest_to_sentence_days int, sentence_observed boolean"
)


def test_rules_keep_followed_people_on_the_rules_clock_plain_keeps_everyone_on_the_offence_clock(spark):
    offences = spark.createDataFrame(
        [
            # A historic index offence committed in month -2: post under the rules, pre in plain.
            ("p1", "historic", True, True, 0, "post", -2, "pre", True, True, True, True, True, 90, 1),
            # Someone whose waiting period runs past the extract's end.
            ("p2", "evaluation", True, False, 3, "post", 3, "post", False, True, False, True, False, None, 1),
            # Declined: out of both.
            ("p3", "evaluation", False, True, 3, "post", 3, "post", False, True, False, True, False, None, 1),
        ],
        OFFENCES,
    )
    cases = spark.createDataFrame(
        [
            ("p1", "historic", True, True, 0, "post", -2, "pre", True, 30, True, 2, 1, True, 2, 1, 40, True),
        ],
        CASES,
    )
    rules, _ = justice_frames(offences, cases)
    assert rules[["evaluation", "post"]].values.tolist() == [[0, 1]]
    plain, plain_cases = justice_frames(offences, cases, "plain")
    assert sorted(plain[["evaluation", "post"]].values.tolist()) == [[0, 0], [1, 1]]
    assert plain_cases[["evaluation", "post"]].values.tolist() == [[0, 0]]
    assert "person_key" not in plain.columns and plain["person"].dtype.kind == "i"
