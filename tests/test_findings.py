"""The brief's further findings (contract 4c), subgroups and representativeness, on hand-built frames.

Expected values are worked out by hand in each test's comments, never recomputed from the input.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from chispa import assert_df_equality

from ld_spark import estimators, findings
from ld_spark.config import DisclosureConf
from ld_spark.effects import Frames
from ld_spark.release.publish import Publisher, standardised_difference


def _did_rows(cells: dict[tuple[int, int, int], tuple[int, float]]) -> pd.DataFrame:
    """(evaluation, post, group) -> (events, months) on two people per cell (events split 1:1 as far
    as they go), each person in the evaluation and historic cells of their group."""
    rows = []
    for (e, p, g), (events, months) in cells.items():
        for half, person in enumerate((f"g{g}a", f"g{g}b")):
            rows.append(
                {
                    "person": person,
                    "evaluation": e,
                    "post": p,
                    "group": g,
                    "ae": events // 2 + (events % 2 if half == 0 else 0),
                    "months": months / 2,
                }
            )
    return pd.DataFrame(rows)


def test_ratio_of_rate_ratios_is_the_treated_groups_did_over_the_others():
    # group 0: every cell 10 events in 10 months (DiD rate ratio 1);
    # group 1: the evaluation cohort's post cell has 30 instead of 15 (DiD rate ratio 2).
    cells = {(e, p, 0): (10, 10.0) for e in (0, 1) for p in (0, 1)}
    cells |= {(e, p, 1): (15, 10.0) for e in (0, 1) for p in (0, 1)}
    cells[(1, 1, 1)] = (30, 10.0)
    est = estimators.count_did_ratio("ae_prior_cjs_rr", _did_rows(cells), "ae", "group")
    assert est.estimate == pytest.approx(2.0, rel=1e-9)
    assert est.ci_low < 2.0 < est.ci_high and est.people == 4


def test_ratio_of_rate_ratios_is_withheld_when_a_cell_has_no_events():
    cells = {(e, p, g): (10, 10.0) for e in (0, 1) for p in (0, 1) for g in (0, 1)}
    cells[(0, 1, 1)] = (0, 10.0)
    est = estimators.count_did_ratio("ae_prior_cjs_rr", _did_rows(cells), "ae", "group")
    assert est.estimate is None and "no events" in est.method


def test_adjusted_rate_ratio_removes_what_the_flag_explains():
    # Contacts depend on the flag only (rate 2 with it, 1 without), but prior CJS contact is more
    # common with the flag: crude rate ratio for cjs = (2*30+1*10)/40 / ((2*10+1*30)/40) = 1.4;
    # adjusted for the flag it is exactly 1.
    rows = []
    for flag, cjs, people in ((1, 1, 30), (1, 0, 10), (0, 1, 10), (0, 0, 30)):
        for i in range(people):
            rows.append(
                {"person": f"{flag}{cjs}{i}", "flag": flag, "cjs": cjs, "contacts": 2 * flag or 1, "months": 1.0}
            )
    df = pd.DataFrame(rows)
    est = estimators.adjusted_rate_ratio("cjs_predicts_health_rr", df, "contacts", "months", ["cjs", "flag"])
    assert est.estimate == pytest.approx(1.0, abs=1e-9)
    assert est.n == 80 and est.people == 80
    crude = estimators.adjusted_rate_ratio("crude", df.assign(flag=0), "contacts", "months", ["cjs", "flag"])
    assert crude.estimate == pytest.approx(1.4, rel=1e-9)


def test_weighted_share_and_its_person_clustered_logit_interval():
    # A: 3 referrals, new; B: 1, not new; C: 2, not new. Share 3/6 = 50%.
    # Influence w(f - s)/W: 0.25, -1/12, -1/6; sum of squares 0.0972222 x 3/2 = 0.1458333,
    # SE 0.381881; on the logit scale SE / (0.5 x 0.5) = 1.527525, so the interval is
    # expit(+-1.959964 x 1.527525) = 4.77% .. 95.23%.
    df = pd.DataFrame({"person": ["A", "B", "C", "D"], "refs": [3, 1, 2, 0], "new": [1, 0, 0, 1]})
    est = estimators.weighted_share("drug_referral_new_pct", df, "refs", "new")
    assert est.estimate == pytest.approx(50.0)
    assert (est.ci_low, est.ci_high) == (pytest.approx(4.771, abs=1e-3), pytest.approx(95.229, abs=1e-3))
    assert est.n == 6 and est.people == 3  # D has no referral: not in the share


def test_ratio_did_is_the_difference_of_cell_ratios_of_sums():
    # Attendances per referral: evaluation post 6/2 = 3, pre 4/2 = 2; historic post 2/1, pre 3/1.
    # DiD = (3 - 2) - (2 - 3) = 2. Influence (num - ratio x den) / cell referrals, signed: person a
    # post (4 - 3)/2, pre -(1 - 2)/2; b post (2 - 3)/2, pre -(3 - 2)/2: a = +0.5 + 0.5 = 1, b = -0.5 - 0.5 = -1,
    # c none (no referrals) and the historic cells (one person each) 0: SE = sqrt(2 x 3/2) = sqrt(3).
    df = pd.DataFrame(
        {
            "person": ["a", "b", "a", "b", "a", "a", "c", "c"],
            "evaluation": [1, 1, 1, 1, 0, 0, 1, 0],
            "post": [1, 1, 0, 0, 1, 0, 1, 1],
            "att": [4, 2, 1, 3, 2, 3, 0, 0],
            "refs": [1, 1, 1, 1, 1, 1, 0, 0],
        }
    )
    est = estimators.ratio_did("iapt_conversion_diff", df, "att", "refs")
    assert est.estimate == pytest.approx(2.0)
    assert est.ci_high - est.estimate == pytest.approx(1.959964 * 3**0.5, rel=1e-6) and est.people == 3


def test_slope_of_scores_on_month():
    # Scores fall 0.4 a month from 12 at month -12, two reviews a month, +-1 around the line.
    rows = [
        {"person": f"p{m}{k}", "rel_month": m, "score": 12 - 0.4 * (m + 12) + (1 if k else -1)}
        for m in range(-12, 0)
        for k in (0, 1)
    ]
    est = estimators.slope("self_reported_health_slope", pd.DataFrame(rows), "score", "rel_month")
    assert est.estimate == pytest.approx(-0.4, abs=1e-12)
    assert est.ci_low < -0.4 < est.ci_high and est.n == 24


PANEL = (
    "person_key string, cohort string, rel_month int, offences long, police_contacts long, "
    "health_contacts long, drug_referrals long, drug_attendances long"
)


def test_prior_history_counts_only_records_inside_the_prior_window(spark):
    panel = spark.createDataFrame(
        [
            ("p1", "evaluation", -25, 1, 0, 1, 1, 0),  # before the window: not prior
            ("p1", "evaluation", -3, 0, 1, 0, 0, 0),  # a police contact is a PNC record
            ("p1", "evaluation", 0, 1, 0, 1, 1, 1),  # the index month: not prior
            ("p1", "historic", -24, 0, 0, 0, 0, 1),  # a treatment start is an NDTMS record
            ("p2", "evaluation", -1, 0, 0, 2, 0, 0),
            ("p3", "evaluation", -25, 0, 0, 0, None, None),  # NDTMS not begun, before the window
            ("p3", "evaluation", -24, 0, 0, 0, None, None),  # NDTMS not begun: no record, not known
            ("p3", "evaluation", -23, 0, 0, 0, 0, 0),
            ("p4", "evaluation", -25, 0, 0, 0, None, None),  # not begun only before the window
            ("p4", "evaluation", -24, 0, 0, 0, 0, 0),
        ],
        PANEL,
    )
    got = panel.transform(findings.prior_history(-24, -1))
    expected = spark.createDataFrame(
        [
            ("p1", "evaluation", 1, 0, 0, 0),
            ("p1", "historic", 0, 0, 1, 0),
            ("p2", "evaluation", 0, 1, 0, 0),
            ("p3", "evaluation", 0, 0, 0, 1),
            ("p4", "evaluation", 0, 0, 0, 0),
        ],
        "person_key string, cohort string, prior_cjs int, prior_health int, prior_drug int, prior_drug_unobserved int",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_referral_counted_new_for_want_of_ndtms_months_is_said_in_the_method():
    # Four people's post-period referrals: a (3, known new), b (1, a prior record), c (2, no record
    # but some prior months before NDTMS began), d (2, known new). New: 3 + 2 + 2 of 8.
    rows = [("a", 3, 0, 0), ("b", 1, 1, 0), ("c", 2, 0, 1), ("d", 2, 0, 0)]
    post_eval = pd.DataFrame(rows, columns=["person", "drug_referrals", "prior_drug", "prior_drug_unobserved"])
    est = findings.new_to_treatment(post_eval)
    assert est.estimate == pytest.approx(100 * 7 / 8)
    assert est.method.endswith(
        "; counted as new: people whose prior months began before NDTMS did (no record of them before it began)"
    )
    # With a record found after NDTMS began, c is not new; e, whose prior months began before
    # NDTMS did, made no referral: nobody's newness in the share rests on missing months.
    known = pd.concat(
        [post_eval.assign(prior_drug=[0, 1, 1, 0]), pd.DataFrame([("e", 0, 0, 1)], columns=post_eval.columns)]
    )
    est = findings.new_to_treatment(known)
    assert est.estimate == pytest.approx(100 * 5 / 8)
    assert "counted as new" not in est.method


def test_age_bands_at_the_edges(spark):
    ages = spark.createDataFrame([(17,), (18,), (24,), (25,), (54,), (55,), (None,)], "age int")
    got = [r.band for r in ages.select(findings.age_band(ages["age"]).alias("band")).collect()]
    assert got == ["under 18", "18-24", "18-24", "25-34", "45-54", "55 and over", "not known"]


def _people(rows):
    columns = ["person", "evaluation", "in_outcomes", "declined", "prior_cjs", "prior_health", "prior_drug"]
    columns += [*findings.FLAGS, "pathway", "point_of_contact", "sex", "age_band"]
    full = []
    for person, evaluation, declined, cjs, mh, pathway, poc, sex, band in rows:
        flags = [mh] + [0] * (len(findings.FLAGS) - 1)
        full.append([person, evaluation, 1 - declined, declined, cjs, 0, 0, *flags, pathway, poc, sex, band])
    return pd.DataFrame(full, columns=columns)


PEOPLE = [
    ("a", 1, 0, 1, 1, "adult", "police_custody", "M", "25-34"),
    ("b", 1, 0, 0, 1, "adult", "magistrates_court", "F", "25-34"),
    ("c", 1, 1, 1, 0, "youth", "police_custody", "M", "under 18"),
    ("a", 0, 0, 0, 1, "adult", "police_custody", "M", "25-34"),  # historic rows are not compared
]


def test_representativeness_counts_consenting_and_declined_evaluation_members():
    rows = {(r["characteristic"], r["level"]): r for r in findings.representativeness(_people(PEOPLE))}
    assert rows[("mental_health", "yes")] | {} == {
        "characteristic": "mental_health",
        "level": "yes",
        "consenting": 2,
        "consenting_total": 2,
        "declined": 0,
        "declined_total": 1,
    }
    assert (rows[("prior_cjs", "yes")]["consenting"], rows[("prior_cjs", "yes")]["declined"]) == (1, 1)
    assert (rows[("sex", "M")]["consenting"], rows[("sex", "F")]["consenting"]) == (1, 1)
    assert rows[("age_band", "under 18")]["declined"] == 1
    assert ("sex", "U") not in rows  # only levels somebody has


def test_subgroups_name_each_level_of_pathway_and_point_of_contact():
    groups = findings.subgroups(_people(PEOPLE))
    assert list(groups) == [
        "pathway=adult",
        "pathway=youth",
        "point_of_contact=magistrates_court",
        "point_of_contact=police_custody",
    ]
    assert sorted(groups["point_of_contact=police_custody"]) == ["a", "c"]


def test_frames_of_a_subgroup_keep_only_its_people():
    frame = pd.DataFrame({"person": ["a", "b", "c"], "x": [1, 2, 3]})
    sub = Frames(frame, None, frame, frame).of(pd.Index(["a", "c"]))
    assert sub.justice_rows is None and list(sub.sums["x"]) == [1, 3] and list(sub.cases["person"]) == ["a", "c"]


def test_standardised_difference_of_two_percentages():
    # (0.5 - 0.4) / sqrt((0.25 + 0.24) / 2) = 0.1 / 0.494975 = 0.202
    assert standardised_difference(50.0, 40.0) == 0.202
    assert standardised_difference(None, 40.0) is None and standardised_difference(0.0, 0.0) == 0.0


def test_representativeness_is_released_from_rounded_counts(tmp_path):
    rules = DisclosureConf(threshold=7, round_to=5, one_decimal_from=4000)
    publisher = Publisher(tmp_path / "results", rules)
    rows = [
        # 101 of 203 -> 100 of 205 = 49%; 3 of 40 is suppressed, and so is what rests on it.
        {"characteristic": "sex", "level": "M", "consenting": 101, "consenting_total": 203, "declined": 3},
        {"characteristic": "sex", "level": "F", "consenting": 102, "consenting_total": 203, "declined": 37},
    ]
    rows = [{**r, "declined_total": 40} for r in rows]
    released = publisher.representativeness("representativeness.csv", rows)
    assert (released[0]["consenting_pct"], released[0]["declined"], released[0]["std_diff"]) == (49.0, None, None)
    # F: 100 of 205 = 49%, 35 of 40 = 88%: (0.49 - 0.88) / sqrt((0.2499 + 0.1056) / 2) = -0.925
    assert (released[1]["consenting_pct"], released[1]["declined_pct"], released[1]["std_diff"]) == (49.0, 88.0, -0.925)
    reported = {(r["row"], r["column"]) for r in publisher.report.rows}
    assert ("sex|M", "std_diff") in reported and ("sex|F", "declined_total") in reported


def test_planted_findings_from_the_blocks_expected_sums(config):
    from ld_spark.synth.generate import planted_findings

    # IAPT contacts per referral: evaluation 20/10 -> 30/10, historic 20/10 -> 20/10; with 0.75
    # attended, (0.75 x 3 - 0.75 x 2) - 0 = 0.75. Drug starts per referral: evaluation 5/10 -> 4/8,
    # historic 5/10 -> 6/10: (0.5 - 0.5) - (0.6 - 0.5) = -0.1. New referrals 2 of 8 = 25%.
    sums = {
        "iapt_referral.evaluation.pre": 10,
        "iapt_referral.evaluation.post": 10,
        "iapt_contact.evaluation.pre": 20,
        "iapt_contact.evaluation.post": 30,
        "iapt_referral.historic.pre": 10,
        "iapt_referral.historic.post": 10,
        "iapt_contact.historic.pre": 20,
        "iapt_contact.historic.post": 20,
        "drug_referral.evaluation.pre": 10,
        "drug_referral.evaluation.post": 8,
        "drug_start.evaluation.pre": 5,
        "drug_start.evaluation.post": 4,
        "drug_referral.historic.pre": 10,
        "drug_referral.historic.post": 10,
        "drug_start.historic.pre": 5,
        "drug_start.historic.post": 6,
        "drug_referral.evaluation.post_new": 2,
    }
    halves = [{k: v / 2 for k, v in sums.items()}] * 2  # two blocks, summed
    summary = pd.DataFrame({"expected_sums": [json.dumps(h) for h in halves]})
    planted = planted_findings(config.generator, summary)
    assert planted["iapt_conversion_diff"] == pytest.approx(0.75)
    assert planted["drug_conversion_diff"] == pytest.approx(-0.1)
    assert planted["drug_referral_new_pct"] == pytest.approx(25.0)
    assert planted["self_reported_health_slope"] == -config.generator.top_decline_per_month
