"""Attacks on released outputs: can a count from 1 to 7 be recovered from what is released?

Each test builds exact counts that include a small cell, releases them the way the job does,
then tries to get the small cell back from the released numbers alone (rounded counts,
percentages with their intervals, per-month rate ratios). The attacker knows the rounding
rule and the estimators; a cell is recovered when every candidate consistent with the release
gives the true small value.
"""

from __future__ import annotations

import csv
import itertools
import re

import numpy as np
import pandas as pd

from ld_spark import estimators
from ld_spark.release import sdc
from ld_spark.release.publish import Publisher

RULES = sdc.Rules()


def _window(released: int) -> range:
    """Exact counts the nearest-5 rounding maps to `released`."""
    return range(max(RULES.threshold + 1, released - 2), released + 3)


def _decimals(x: float) -> int:
    """The decimals a released number carries (at most 9: beyond that, float noise)."""
    text = repr(float(x))
    return min(len(text.split(".")[1]), 9) if "." in text and "e" not in text else 9


def test_a_percentage_interval_does_not_give_back_a_small_complement():
    # 444 of 447 referred people have the vulnerability: the 3 without it are a small cell.
    k, n = 444, 447
    report = sdc.Report()
    row = {"estimand": "pct_any_vulnerability", "estimate": 100 * k / n, "n": n, "method": "wilson"}
    low, high = (100 * x for x in sdc.wilson(k, n))
    released = sdc.release_percentage_estimate({**row, "ci_low": low, "ci_high": high}, k, RULES, report)
    # The attacker tries every exact (k, n) the rounded n allows, as if the interval were exact,
    # at the precision it was released to.
    digits = _decimals(released["ci_low"])
    candidates = [
        (kk, nn)
        for nn in _window(released["n"])
        for kk in range(nn - 20, nn + 1)
        if tuple(round(x, digits) for x in sdc.wilson(kk, nn))
        == (round(released["ci_low"], digits), round(released["ci_high"], digits))
    ]
    complements = {nn - kk for kk, nn in candidates}
    assert complements != {n - k}, "the released interval gives back the 3 people without the vulnerability"


def test_an_exact_interval_would_have_given_it_back():
    """The same attack on the interval as the job released it before (from the exact counts):
    proves the attack above can succeed."""
    k, n = 444, 447
    low, high = (round(100 * x, 1) for x in sdc.wilson(k, n))
    candidates = [
        (kk, nn)
        for nn in _window(445)
        for kk in range(nn - 20, nn + 1)
        if tuple(round(100 * x, 1) for x in sdc.wilson(kk, nn)) == (low, high)
    ]
    assert {nn - kk for kk, nn in candidates} == {3}


def test_a_percentage_has_one_decimal_only_on_a_denominator_of_4000_or_more():
    assert sdc.released_percentage(313, 447, RULES) == 71.0
    assert sdc.released_percentage(1313, 4447, RULES) == 29.6
    assert sdc.released_percentage(1313, 3997, RULES) == 33.0


def _event_study_frame() -> pd.DataFrame:
    """Person-level rows for one outcome: a pooled reference and month 3, where the evaluation
    cohort has only 3 events (a small cell figure1.csv suppresses)."""
    rows, person = [], 0
    for evaluation, ref_events, month_events in ((1, 100, 3), (0, 120, 40)):
        for i in range(200):
            person += 1
            rows.append(
                {"person": person, "evaluation": evaluation, "level": "ref", "months": 12, "y": int(i < ref_events)}
            )
            rows.append(
                {"person": person, "evaluation": evaluation, "level": "3", "months": 1, "y": int(i < month_events)}
            )
    return pd.DataFrame(rows)


def test_an_event_study_month_resting_on_a_small_cell_is_withheld_so_the_cell_cannot_be_rebuilt(tmp_path):
    fit = estimators.event_study(_event_study_frame(), "y")
    assert fit.loc[0, "smallest_cell"] == 3
    publisher = Publisher(tmp_path / "results", RULES)
    rows = [
        {
            "outcome": "y",
            "rel_month": 3,
            "rr": r.rr,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "people": int(r.people),
            "df_resid": int(r.df_resid),
            "smallest_cell": int(r.smallest_cell),
        }
        for r in fit.itertuples()
    ]
    released = publisher.event_study("event_study.csv", rows)
    # Attack: rr = (E1/P1) / (R1/M1) / ((E0/P0) / (R0/M0)); every count but E1 is released
    # rounded (figure1.csv), so E1 = rr * P1 * (R1/M1) * (E0/P0) / (R0/M0) to within rounding.
    rr = released[0]["rr"]
    if rr is not None:
        e1 = rr * 200 * (100 / 2400) * (40 / 200) / (120 / 2400)
        assert round(e1) != 3, "the month's rate ratio gives back the evaluation cohort's 3 events"
    assert released[0]["rr"] is None and released[0]["ci_low"] is None
    # ...and a month whose cells are all large is released.
    assert (
        sdc.release_model_row(
            "e.csv",
            "y|4",
            {"rr": 1.2, "ci_low": 1.0, "ci_high": 1.4},
            ("rr", "ci_low", "ci_high"),
            400,
            399,
            RULES,
            sdc.Report(),
            smallest_cell=40,
        )["rr"]
        == 1.2
    )


def test_the_attack_rebuilds_the_cell_from_an_ungated_ratio():
    """Proves the attack above can succeed: the unreleased ratio gives back exactly 3."""
    rr = estimators.event_study(_event_study_frame(), "y").loc[0, "rr"]
    assert round(rr * 200 * (100 / 2400) * (40 / 200) / (120 / 2400)) == 3


def test_a_mean_a_few_values_dominate_is_suppressed(tmp_path):
    spread = estimators.concentration([np.full(40, 30.0), np.arange(1, 41, dtype=float)])
    one_big = estimators.concentration([np.full(40, 30.0), np.r_[np.full(38, 1.0), 2000.0, 1500.0]])
    assert not sdc.dominated(spread["top_share"], spread["p_ratio"], RULES)
    assert one_big["top_share"] > 0.9 and sdc.dominated(one_big["top_share"], one_big["p_ratio"], RULES)
    publisher = Publisher(tmp_path / "results", RULES)
    row = {
        "estimand": "sentence_length_ratio",
        "estimate": 0.8,
        "ci_low": 0.6,
        "ci_high": 1.1,
        "p_value": 0.2,
        "n": 160,
        "method": "m",
        "people": 150,
        "df_resid": 149,
        "summarised_values": 40,
    }
    kept, gone = publisher.estimates("estimates.csv", [{**row, **spread}, {**row, **one_big}])
    assert kept["estimate"] == 0.8 and gone["estimate"] is None and gone["ci_high"] is None


def test_the_report_names_the_rule_for_every_released_cell_and_states_no_count(tmp_path):
    publisher = Publisher(tmp_path / "results", RULES)
    publisher.table(
        "site_onward_referrals.csv",
        ["site_code", "referrals", "iapt"],
        [
            {
                "site_code": "LD01",
                "referrals": 40,
                "iapt": 3,
                "gp": 0,
                "advice": 12,
                "mha_assessment": 9,
                "drug_alcohol": 10,
                "mental_health": 20,
            }
        ],
    )
    publisher.estimates(
        "estimates.csv",
        [
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
                "summarised_values": 4,
            },
            {"estimand": "n_historic", "estimate": 70, "n": 70, "method": "count"},
        ],
    )
    with publisher.write_report().open() as handle:
        report = list(csv.DictReader(handle))
    cells = {(r["output"], r["row"], r["column"]): r["action"] for r in report}
    # 40 and 70 are unchanged by rounding, and the report still says they were rounded.
    assert cells[("site_onward_referrals.csv", "LD01", "referrals")] == "rounded"
    assert cells[("estimates.csv", "n_historic", "estimate")] == "rounded"
    assert cells[("site_onward_referrals.csv", "LD01", "iapt")] == "suppressed"
    assert cells[("site_onward_referrals.csv", "LD01", "gp")] == "released"
    assert cells[("estimates.csv", "custody_or", "estimate")] in ("withheld", "suppressed")
    for r in report:
        assert not re.search(r"\d", r["reason"] + r["action"]), r


def test_released_percentages_carry_no_more_than_the_rounded_counts(tmp_path):
    """Differencing: a percentage and its interval are functions of the released k and n only,
    so two exact inputs that round alike release the same row."""
    for (k1, n1), (k2, n2) in itertools.combinations([(313, 447), (317, 443), (315, 445)], 2):
        a = sdc.release_percentage_estimate({"estimand": "p", "estimate": 0, "n": n1}, k1, RULES, sdc.Report())
        b = sdc.release_percentage_estimate({"estimand": "p", "estimate": 0, "n": n2}, k2, RULES, sdc.Report())
        assert a == b


def test_sensitivity_rows_are_released_per_analysis_and_savings_go_with_their_own_custody_or(tmp_path):
    """custody_or on too few people withholds that analysis's savings, not another analysis's;
    the report names each cell `analysis|estimand`."""
    publisher = Publisher(tmp_path / "results", RULES)
    fit = {"ci_low": 0.3, "ci_high": 0.9, "p_value": 0.01, "n": 400, "method": "m", "df_resid": 399}
    rows = [
        {"analysis": "main", "estimand": "custody_or", "estimate": 0.5, "people": 4, **fit},
        {"analysis": "main", "estimand": "savings_per_referral_avg_gbp", "estimate": 900.0, "people": 400, **fit},
        {"analysis": "placebo_index", "estimand": "custody_or", "estimate": 1.1, "people": 400, **fit},
        {
            "analysis": "placebo_index",
            "estimand": "savings_per_referral_avg_gbp",
            "estimate": -20.0,
            "people": 400,
            **fit,
        },
    ]
    released = publisher.grouped(
        "sensitivity.csv", "analysis", rows, derived={"custody_or": ["savings_per_referral_avg_gbp"]}
    )
    assert [(r["analysis"], r["estimand"], r["estimate"]) for r in released] == [
        ("main", "custody_or", None),
        ("main", "savings_per_referral_avg_gbp", None),
        ("placebo_index", "custody_or", 1.1),
        ("placebo_index", "savings_per_referral_avg_gbp", -20.0),
    ]
    cells = {(r["row"], r["column"]): r["action"] for r in publisher.report.rows}
    assert cells[("main|savings_per_referral_avg_gbp", "estimate")] == "withheld"
    assert cells[("placebo_index|custody_or", "estimate")] == "released"
    with (publisher.path("sensitivity.csv")).open() as handle:
        assert next(csv.reader(handle)) == ["analysis", "estimand", "estimate", "ci_low", "ci_high", "p_value", "n"]
