"""Disclosure control rules on hand-built rows."""

from __future__ import annotations

import math

import pytest

from ld_spark.release.sdc import Report, Rules, Spec, release, release_estimate, released_count, released_percentage

RULES = Rules()


def test_counts_of_one_to_seven_are_suppressed_and_others_rounded_to_five():
    assert [released_count(n, RULES) for n in (0, 1, 7, 8, 12, 13, 1002)] == [0, None, None, 10, 10, 15, 1000]


def test_a_stricter_environment_can_set_the_threshold_to_ten():
    assert released_count(10, Rules(threshold=10)) is None and released_count(11, Rules(threshold=10)) == 10


def test_percentages_come_from_the_rounded_figures():
    assert released_percentage(13, 52, RULES) == 100 * 15 / 50
    assert released_percentage(3, 52, RULES) is None


def test_release_suppresses_rounds_recomputes_and_reports_every_change():
    rows = [
        {"cohort": "historic", "rel_month": -1, "persons": 72, "events": 3, "rate": 3 / 72},
        {"cohort": "evaluation", "rel_month": -1, "persons": 447, "events": 54, "rate": 54 / 447},
    ]
    spec = Spec(key=["cohort", "rel_month"], counts=["persons", "events"], ratios={"rate": ("events", "persons")})
    report = Report()
    got = release("figure1.csv", rows, spec, RULES, report)
    assert got[0] == {"cohort": "historic", "rel_month": -1, "persons": 70, "events": None, "rate": None}
    assert got[1]["persons"] == 445 and got[1]["events"] == 55 and got[1]["rate"] == 55 / 445
    actions = {(r["row"], r["column"], r["action"]) for r in report.rows}
    assert ("historic|-1", "events", "suppressed") in actions and ("historic|-1", "rate", "suppressed") in actions
    assert ("evaluation|-1", "persons", "rounded") in actions


def test_a_mean_of_fewer_than_eight_values_is_suppressed():
    report = Report()
    got = release(
        "x.csv",
        [{"site": "LD01", "cases": 5, "mean_days": 41.2}],
        Spec(key=["site"], counts=["cases"], summaries={"mean_days": "cases"}),
        RULES,
        report,
    )
    assert got[0]["mean_days"] is None and got[0]["cases"] is None


def test_model_estimates_on_too_few_people_or_degrees_of_freedom_are_withheld():
    report = Report()
    row = {"estimand": "custody_or", "estimate": 0.5, "ci_low": 0.2, "ci_high": 1.1, "p_value": 0.08, "n": 9}
    withheld = release_estimate(row, people=9, residual_df=200, rules=RULES, report=report)
    assert withheld["estimate"] is None and withheld["p_value"] is None and withheld["n"] == 10
    kept = release_estimate({**row, "n": 412}, people=412, residual_df=408, rules=RULES, report=report)
    assert kept["estimate"] == 0.5 and kept["n"] == 410
    assert [r["action"] for r in report.rows if r["column"] == "estimate"] == ["withheld", "released"]


def test_counts_of_people_in_the_results_table_are_rounded_and_percentages_come_from_rounded_counts():
    from ld_spark.release.sdc import release_count_estimate, release_percentage_estimate

    report = Report()
    n = release_count_estimate({"estimand": "n_historic", "estimate": 72, "n": 72}, RULES, report)
    assert (n["estimate"], n["n"]) == (70, 70)
    pct = {"estimand": "pct_mental_health", "estimate": 100 * 313 / 447, "ci_low": 65.6, "ci_high": 74.2, "n": 447}
    got = release_percentage_estimate(pct, 313, RULES, report)
    # Whole percent on a denominator under 4,000; the interval is the rounded counts' interval.
    assert (got["estimate"], got["ci_low"], got["ci_high"], got["n"]) == (71.0, 66.0, 75.0, 445)
    few = release_percentage_estimate({**pct, "estimate": 100 * 3 / 447}, 3, RULES, report)
    assert few["estimate"] is None and few["ci_low"] is None and few["ci_high"] is None
    assert ("pct_mental_health", "estimate", "suppressed") in {
        (r["row"], r["column"], r["action"]) for r in report.rows
    }


def test_publisher_writes_released_tables_withholds_derived_rows_and_reports(tmp_path):
    import csv

    from ld_spark.release.publish import Publisher

    publisher = Publisher(tmp_path / "results", RULES)
    rows = [
        {
            "estimand": "custody_or",
            "estimate": 0.4,
            "ci_low": 0.1,
            "ci_high": 1.6,
            "p_value": 0.2,
            "n": 30,
            "method": "m",
            "people": 6,
            "df_resid": 5,
        },
        {
            "estimand": "savings_per_referral_avg_gbp",
            "estimate": 900.0,
            "ci_low": 100.0,
            "ci_high": 1500.0,
            "p_value": None,
            "n": 447,
            "method": "m",
            "people": 447,
        },
        {
            "estimand": "offending_rr",
            "estimate": 1.02,
            "ci_low": 0.9,
            "ci_high": 1.1,
            "p_value": 0.7,
            "n": 447,
            "method": "m",
            "people": 447,
            "df_resid": 446,
        },
    ]
    released = publisher.estimates("estimates.csv", rows, derived={"custody_or": ["savings_per_referral_avg_gbp"]})
    assert [r["estimate"] for r in released] == [None, None, 1.02]
    with publisher.path("estimates.csv").open() as handle:
        written = list(csv.DictReader(handle))
    assert [r["estimate"] for r in written] == ["", "", "1.02"] and [r["n"] for r in written] == ["30", "445", "445"]
    publisher.table(
        "site_onward_referrals.csv",
        ["site_code", "referrals", "iapt"],
        [{"site_code": "LD01", "referrals": 41, "iapt": 3, **{k: 0 for k in ("advice", "gp")}}],
    )
    with publisher.path("site_onward_referrals.csv").open() as handle:
        assert list(csv.DictReader(handle)) == [{"site_code": "LD01", "referrals": "40", "iapt": ""}]
    with publisher.write_report().open() as handle:
        reasons = {(r["output"], r["row"], r["action"]) for r in csv.DictReader(handle)}
    assert {
        ("estimates.csv", "custody_or", "withheld"),
        ("estimates.csv", "savings_per_referral_avg_gbp", "withheld"),
        ("site_onward_referrals.csv", "LD01", "suppressed"),
    } <= reasons


def test_an_estimate_resting_on_a_mean_of_few_values_is_suppressed(tmp_path):
    from ld_spark.release.publish import Publisher

    publisher = Publisher(tmp_path / "results", RULES)
    row = {
        "estimand": "savings_per_referral_avg_gbp",
        "estimate": 900.0,
        "ci_low": 100.0,
        "ci_high": 1500.0,
        "p_value": None,
        "n": 447,
        "method": "m",
        "people": 447,
    }
    few, many = publisher.estimates(
        "estimates.csv", [{**row, "summarised_values": 6}, {**row, "summarised_values": 60}]
    )
    assert few["estimate"] is None and few["ci_high"] is None and many["estimate"] == 900.0


def test_a_model_estimate_made_of_a_cell_with_a_small_count_is_withheld():
    report = Report()
    row = {"estimand": "mha_detention_rr", "estimate": 1.3, "ci_low": 0.6, "ci_high": 2.8, "p_value": 0.4, "n": 900}
    withheld = release_estimate(row, people=900, residual_df=899, rules=RULES, report=report, smallest_cell=5)
    assert withheld["estimate"] is None and withheld["ci_high"] is None and withheld["n"] == 900
    kept = release_estimate(row, people=900, residual_df=899, rules=RULES, report=report, smallest_cell=8)
    assert kept["estimate"] == 1.3
    assert [r["reason"] for r in report.rows if r["column"] == "estimate"][0].startswith("a cell")


def test_a_model_share_of_events_is_recomputed_from_rounded_counts_with_its_interval_width_kept():
    from ld_spark.release.sdc import release_share_estimate

    report = Report()
    # 129 new of 447 referrals (28.86%), a clustered logit interval of half-width 0.25.
    logit = math.log(129 / 318)
    low, high = (100 / (1 + math.exp(-(logit + s * 0.25))) for s in (-1, 1))
    row = {"estimand": "drug_referral_new_pct", "estimate": 100 * 129 / 447, "ci_low": low, "ci_high": high}
    fit = {"n": 447, "people": 300, "df_resid": 299, "smallest_cell": 90, "p_value": 1.1e-19}
    got = release_share_estimate({**row, **fit}, 129, RULES, report)
    # 130 of 445, whole percent; the interval is 29% widened by the same 0.25 on the logit scale,
    # and the p-value is that interval's (the exact one would give the exact share back).
    # logit(0.29) = -0.8954; -0.8954 -/+ 0.25 -> 24.13% and 34.40%; z = 0.8954 / (0.25 / 1.96) = 7.02.
    assert (got["estimate"], got["n"]) == (29.0, 445)
    assert (got["ci_low"], got["ci_high"]) == (24.0, 34.0)
    assert got["p_value"] == pytest.approx(2.2237e-12, rel=1e-4)
    for bounds in ((None, None), (0.0, 40.0), (20.0, 100.0)):
        edge = release_share_estimate({**row, **fit, "ci_low": bounds[0], "ci_high": bounds[1]}, 129, RULES, report)
        assert edge["estimate"] is None and edge["p_value"] is None, bounds
    few = release_share_estimate({**row, **fit, "smallest_cell": 5}, 5, RULES, report)
    assert few["estimate"] is None and few["ci_low"] is None


def test_a_test_statistic_on_exact_counts_is_released_rounded():
    from scipy import stats

    from ld_spark.release.sdc import release_test

    report = Report()
    row = {"estimand": "site_heterogeneity_iapt_p", "estimate": 61.83724519, "ci_low": None, "test_df": 19}
    row["p_value"] = float(stats.chi2.sf(row["estimate"], 19))
    got = release_test(row, dict(row), report)
    # The p-value is the rounded statistic's, so it gives back no more than 61.8 does.
    assert (got["estimate"], got["p_value"]) == (61.8, 2.0e-06)  # chi2.sf(61.8, 19) = 2.0021e-06
    assert row["estimate"] == 61.83724519  # the input row is left as it was
    assert release_test(row, {**row, "estimate": None, "p_value": None}, report)["estimate"] is None
