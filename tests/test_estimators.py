"""Each estimator recovers a known effect from simulated person-level data (fixed seeds).

The simulations mimic the evaluation's structure: everyone is in the evaluation cohort, a fifth
are also in the historic control, each person has a frailty shared by all their periods, and
the effect acts only on the evaluation cohort's post period.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ld_spark import estimators
from ld_spark.estimators import binary_did, count_did, did_design, event_study, linear_did


def _people(rng, n_people=3000, historic_share=0.2):
    rows = []
    historic = rng.random(n_people) < historic_share
    for person in range(n_people):
        cohorts = (1, 0) if historic[person] else (1,)
        for evaluation in cohorts:
            for post in (0, 1):
                rows.append((person, evaluation, post))
    return pd.DataFrame(rows, columns=["person", "evaluation", "post"])


def _counts(seed=1, rr=1.4, shape=0.7, period_shape=None):
    rng = np.random.default_rng(seed)
    df = _people(rng)
    frailty = rng.gamma(shape, 1 / shape, size=df["person"].max() + 1)[df["person"]]
    if period_shape:  # a crisis of its own in each period, on top of the person's level
        frailty = frailty * rng.gamma(period_shape, 1 / period_shape, size=len(df))
    # Both cohorts share a crisis ramp (post higher than pre) and differ in level.
    base = 0.2 * np.where(df["post"] == 1, 1.8, 1.0) * np.where(df["evaluation"] == 1, 1.0, 0.8)
    effect = np.where((df["evaluation"] == 1) & (df["post"] == 1), rr, 1.0)
    df["months"] = 12
    df["events"] = rng.poisson(12 * base * effect * frailty)
    return df


def test_count_did_recovers_the_planted_rate_ratio_inside_its_interval():
    est = count_did("x_rr", _counts(rr=1.4), "events")
    assert est.ci_low < 1.4 < est.ci_high
    assert abs(est.estimate - 1.4) < 0.15
    assert est.n == 3000 and 0 <= est.p_value < 0.05


def test_count_did_point_estimate_is_the_ratio_of_the_four_rates():
    df = pd.DataFrame(
        {
            "person": [1, 1, 2, 2, 1, 1],
            "evaluation": [1, 1, 1, 1, 0, 0],
            "post": [0, 1, 0, 1, 0, 1],
            "months": 12,
            "events": [2, 6, 2, 2, 4, 4],
        }
    )
    # evaluation: pre 4, post 8 -> x2; historic: pre 4, post 4 -> x1.
    assert count_did("x", df, "events").estimate == pytest.approx(2.0)


def _se_ratio(df):
    """Clustered / naive standard errors of (intercept, evaluation, post, interaction)."""
    import statsmodels.api as sm

    model = sm.GLM(
        df["events"].to_numpy(float),
        did_design(df),
        family=sm.families.Poisson(),
        exposure=df["months"].to_numpy(float),
    )
    return model.fit(cov_type="cluster", cov_kwds={"groups": df["person"].to_numpy()}).bse / model.fit().bse


def test_clustered_standard_errors_differ_from_naive_ones_on_clustered_data():
    # A person's level shared by all their periods: the between-person cohort contrast is far
    # less certain than a naive Poisson fit claims.
    assert _se_ratio(_counts(seed=3, rr=1.0, shape=0.3))[1] > 1.5
    # Crises that differ between a person's periods: the DiD itself is less certain too.
    assert _se_ratio(_counts(seed=3, rr=1.0, shape=0.3, period_shape=0.5))[3] > 1.3


def test_binary_did_recovers_a_halved_odds_of_custody():
    rng = np.random.default_rng(5)
    rows = _people(rng, n_people=4000)
    rows = rows.loc[rows.index.repeat(rng.integers(1, 3, size=len(rows)))].reset_index(drop=True)
    person_logit = rng.normal(0, 0.8, size=rows["person"].max() + 1)[rows["person"]]
    logit = (
        -1.2
        + 0.2 * rows["post"]
        + person_logit
        + np.where((rows["evaluation"] == 1) & (rows["post"] == 1), np.log(0.5), 0)
    )
    rows["custodial"] = (rng.random(len(rows)) < 1 / (1 + np.exp(-logit))).astype(int)
    est = binary_did("custody_or", rows, "custodial")
    # Person heterogeneity attenuates the marginal odds ratio a little; the CI still covers 0.5.
    assert est.ci_low < 0.5 < est.ci_high and est.estimate < 0.75


def test_linear_did_recovers_a_seven_day_shift_and_a_ratio_of_geometric_means():
    rng = np.random.default_rng(9)
    df = _people(rng, n_people=4000)
    person = rng.normal(0, 20, size=df["person"].max() + 1)[df["person"]]
    treated = (df["evaluation"] == 1) & (df["post"] == 1)
    df["days"] = 90 + 10 * df["post"] + person + rng.normal(0, 30, size=len(df)) + np.where(treated, -7, 0)
    est = linear_did("court_duration_days_diff", df, "days")
    assert est.ci_low < -7 < est.ci_high and abs(est.estimate + 7) < 3
    df["sentence"] = np.exp(
        np.log(120) + 0.3 * person / 20 + rng.normal(0, 0.6, size=len(df)) + np.where(treated, np.log(0.8), 0)
    )
    ratio = linear_did("sentence_length_ratio", df, "sentence", log=True)
    assert ratio.ci_low < 0.8 < ratio.ci_high and abs(ratio.estimate - 0.8) < 0.06


def test_an_empty_cell_gives_no_estimate_rather_than_a_wild_one():
    df = pd.DataFrame(
        {"person": [1, 1, 2, 2], "evaluation": [1, 1, 0, 0], "post": [0, 1, 0, 1], "months": 12, "events": [3, 4, 0, 0]}
    )
    est = count_did("x", df, "events")
    assert est.estimate is None and "not estimable" in est.method


def test_event_study_finds_the_effect_in_the_months_it_was_planted():
    rng = np.random.default_rng(11)
    people = rng.random(3000) < 0.25
    rows = []
    for person in range(3000):
        for evaluation in (1, 0) if people[person] else (1,):
            rows.append((person, evaluation, "ref", 12))
            rows += [(person, evaluation, str(m), 1) for m in range(-3, 4)]
    df = pd.DataFrame(rows, columns=["person", "evaluation", "level", "months"])
    effect = np.where((df["evaluation"] == 1) & df["level"].isin(["0", "1"]), 2.0, 1.0)
    df["events"] = rng.poisson(0.2 * df["months"] * effect)
    got = event_study(df, "events").set_index("level")
    assert got.loc["0", "ci_low"] > 1.3 and got.loc["1", "ci_low"] > 1.3
    assert (
        got.loc["-2", "ci_low"] < 1 < got.loc["-2", "ci_high"] and got.loc["3", "ci_low"] < 1 < got.loc["3", "ci_high"]
    )


def test_event_study_without_a_control_cohort_gives_no_ratios_rather_than_an_error():
    # A tiny extract: only evaluation-cohort people, so no month's DiD ratio is identified.
    rows = [(person, 1, level, 12 if level == "ref" else 1) for person in range(5) for level in ("ref", "-1", "0")]
    df = pd.DataFrame(rows, columns=["person", "evaluation", "level", "months"]).assign(events=1)
    got = event_study(df, "events")
    assert list(got["level"]) == ["-1", "0"] and got[["rr", "ci_low", "ci_high"]].isna().all().all()
    assert list(got["people"]) == [5, 5] and list(got["df_resid"]) == [0, 0]


def test_event_study_started_at_the_closed_form_optimum_gives_the_plain_fit(monkeypatch):
    rng = np.random.default_rng(5)
    rows = [
        (person, evaluation, level, 12 if level == "ref" else 1)
        for person in range(2000)
        for evaluation in ((1, 0) if person % 4 == 0 else (1,))
        for level in ("ref", "-2", "-1", "0", "1")
    ]
    df = pd.DataFrame(rows, columns=["person", "evaluation", "level", "months"])
    df["events"] = rng.poisson(0.1 * df["months"] * np.where((df["evaluation"] == 1) & (df["level"] == "0"), 1.8, 1.0))
    started = event_study(df, "events")
    monkeypatch.setattr(estimators, "_saturated_optimum", lambda *args: None)  # statsmodels' own start
    plain = event_study(df, "events")
    pd.testing.assert_frame_equal(started, plain, rtol=1e-7)
    assert started.set_index("level").loc["0", "rr"] > 1.4


def test_km_restricted_mean_matches_a_hand_computed_curve_with_one_open_case():
    # S drops to 3/4 at day 2 (4 at risk) and to 1/2 at day 4 (3 at risk: one closes, one is open);
    # the case closing at day 6 is past tau = 5. Area: 2 x 1 + 2 x 3/4 + 1 x 1/2 = 4.
    time, event = np.array([2, 4, 4, 6]), np.array([1, 0, 1, 1])
    assert estimators.km_restricted_mean(time, event, tau=5) == pytest.approx(4.0)


def test_pseudo_observations_without_censoring_are_the_restricted_times():
    time = np.array([3, 10, 10, 400, 50, 365])
    pseudo = estimators.restricted_mean_pseudo(time, np.ones(6, bool), tau=365)
    np.testing.assert_allclose(pseudo, [3, 10, 10, 365, 50, 365], atol=1e-9)


def _court_cases(seed: int, shift: float) -> pd.DataFrame:
    """Cases of 4,000 people, three a person, durations 8 + Gamma(2, 60) days; the evaluation
    cohort's post-period cases run `shift` days shorter and, like the last months of a real
    extract, are cut at a date 60-420 days after their first hearing: open cases, censored there."""
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(4000), 3)
    evaluation = (rng.random(4000) < 0.8).astype(int)[person]
    post = rng.integers(0, 2, size=len(person))
    days = np.round(8 + rng.gamma(2.0, 60.0, size=len(person)) + shift * (evaluation & post))
    cut = np.where((evaluation & post) == 1, rng.integers(60, 421, size=len(person)), np.inf)
    closed = days <= cut
    return pd.DataFrame(
        {
            "person": person,
            "evaluation": evaluation,
            "post": post,
            "days": np.where(closed, days, cut),
            "closed": closed.astype(int),
        }
    )


def test_restricted_mean_did_keeps_open_cases_and_recovers_the_shift_dropping_them_does_not():
    # The truth from an independent draw of the same durations: E[min(D - 7, 365)] - E[min(D, 365)].
    d = np.round(8 + np.random.default_rng(99).gamma(2.0, 60.0, size=2_000_000))
    truth = np.minimum(d - 7, 365).mean() - np.minimum(d, 365).mean()
    assert -7 < truth < -6.5
    cases = _court_cases(seed=3, shift=-7.0)
    assert (cases["closed"] == 0).sum() > 500
    est = estimators.restricted_mean_did("court_duration_days_diff", cases, "days", "closed", tau=365)
    assert est.ci_low <= truth <= est.ci_high
    assert est.people == 4000
    # Completed cases only (the old specification): the slow cases vanish from one cell.
    completed = linear_did("court_duration_days_diff", cases[cases["closed"] == 1], "days")
    assert completed.ci_high < truth - 10


def test_restricted_mean_did_without_open_cases_is_the_difference_of_capped_means():
    cases = _court_cases(seed=4, shift=0.0)
    cases = cases[cases["closed"] == 1]
    capped = cases.assign(days=np.minimum(cases["days"], 365))
    est = estimators.restricted_mean_did("x", cases, "days", "closed", tau=365)
    means = capped.groupby(["evaluation", "post"])["days"].mean()
    assert est.estimate == pytest.approx((means[1, 1] - means[1, 0]) - (means[0, 1] - means[0, 0]), abs=1e-6)


def test_month_profile_did_is_not_fooled_by_a_pre_index_rise_one_cohort_cannot_show():
    import pandas as pd

    from ld_spark.estimators import count_did, count_did_months

    # Rates per person-month: 1 everywhere, except 3 in month -1 - which the historic control
    # never shows (no time at risk there). No effect: the true rate ratio is 1.
    counts = {-2: [0, 2, 1, 1], -1: [2, 4, 3, 3], 0: [1, 1, 0, 2], 1: [2, 0, 1, 1]}
    rows = []
    for evaluation in (1, 0):
        for month, values in counts.items():
            for i, y in enumerate(values):
                missing = evaluation == 0 and month == -1
                rows.append(
                    {
                        "person": 10 * evaluation + i,
                        "evaluation": evaluation,
                        "post": int(month >= 0),
                        "rel_month": month,
                        "events": 0 if missing else y,
                        "at_risk": 0.0 if missing else 1.0,
                    }
                )
    df = pd.DataFrame(rows)
    got = count_did_months("x_rr", df, "events")
    assert got.estimate == pytest.approx(1.0, abs=1e-6)
    assert got.ci_low < 1 < got.ci_high
    # Pooling the months instead: the evaluation cohort's pre period holds the rise, 2x the rate.
    sums = df[df["at_risk"] > 0].groupby(["person", "evaluation", "post"], as_index=False)[["events", "at_risk"]].sum()
    assert count_did("x_rr", sums, "events", exposure="at_risk").estimate == pytest.approx(0.5)


def test_a_saturated_ratio_carries_its_smallest_cell_for_disclosure_control():
    df = pd.DataFrame(
        {
            "person": [1, 1, 2, 2, 3, 3, 4, 4],
            "evaluation": [1, 1, 1, 1, 0, 0, 0, 0],
            "post": [0, 1, 0, 1, 0, 1, 0, 1],
            "months": 12,
            "events": [9, 12, 10, 11, 3, 40, 0, 30],
        }
    )
    # Historic pre holds 3 events from 1 person; every other cell more.
    assert count_did("x_rr", df, "events").smallest_cell == 1
    # Binary: every cell mixed; the smallest count is historic post's 2 non-custodial sentences.
    cells = {(1, 0): (3, 4), (1, 1): (5, 3), (0, 0): (3, 6), (0, 1): (7, 2)}
    rows = [(e, p, y) for (e, p), (pos, neg) in cells.items() for y in [1] * pos + [0] * neg]
    binary = pd.DataFrame(rows, columns=["evaluation", "post", "custody"]).assign(person=lambda d: range(len(d)))
    assert binary_did("x_or", binary, "custody").smallest_cell == 2


def test_smallest_count_looks_at_every_sum_and_the_people_with_events_in_each_cell():
    df = pd.DataFrame(
        {
            "person": [1, 2, 3, 4, 5, 6],
            "evaluation": [1, 1, 1, 0, 0, 0],
            "post": [1, 1, 1, 1, 1, 1],
            "referrals": [4, 4, 4, 9, 9, 0],
            "attended": [3, 3, 3, 4, 5, 0],
        }
    )
    # Sums: referrals 12 / 18, attended 9 / 9; people with referrals: 3 / 2.
    assert estimators.smallest_count(df, ["evaluation"], "referrals", "attended") == 2
    assert estimators.smallest_count(df.assign(referrals=0), ["evaluation"], "referrals") is None


def test_a_share_of_events_carries_its_count_for_disclosure_control():
    df = pd.DataFrame({"person": [1, 2, 3, 4], "referrals": [5, 3, 2, 10], "new": [1, 0, 1, 0]})
    est = estimators.weighted_share("x_pct", df, "referrals", "new")
    assert (est.share_k, est.n) == (7, 20) and est.estimate == pytest.approx(35.0)
    assert est.smallest_cell == 2  # two people with new referrals


def _month_rows(seed: int) -> pd.DataFrame:
    """Person-month rows (months -12..11), a frailty per person, an effect in the evaluation
    cohort's post months, and months at risk between 0.2 and 1."""
    rng = np.random.default_rng(seed)
    people = _people(rng, n_people=1500)[["person", "evaluation"]].drop_duplicates()
    df = people.merge(pd.DataFrame({"rel_month": range(-12, 12)}), how="cross")
    df["post"] = (df["rel_month"] >= 0).astype(int)
    df["at_risk"] = rng.uniform(0.2, 1.0, len(df))
    frailty = rng.gamma(0.7, 1 / 0.7, df["person"].max() + 1)[df["person"]]
    rate = 0.08 * frailty * np.exp(0.02 * df["rel_month"]) * np.where(df["evaluation"] * df["post"] == 1, 1.5, 1.0)
    df["offences"] = rng.poisson(rate * df["at_risk"])
    return df


def test_month_profile_rate_ratio_equals_statsmodels_own_fit_from_zero():
    # count_did_months starts Newton at the optimum of the summed cells; statsmodels' IRLS from its
    # own start, on the same design, must give the same estimate and the same clustered interval.
    import statsmodels.api as sm

    df = _month_rows(seed=8)
    ours = estimators.count_did_months("offending_rr", df, "offences")
    months = sorted(df["rel_month"].unique())
    e, post = df["evaluation"].to_numpy(float), df["post"].to_numpy(float)
    X = np.column_stack([*((df["rel_month"] == m).to_numpy(float) for m in months), e, e * post])
    plain = sm.GLM(
        df["offences"].to_numpy(float), X, family=sm.families.Poisson(), exposure=df["at_risk"].to_numpy(float)
    ).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(df["person"])[0]})
    b, se = plain.params[-1], plain.bse[-1]
    expected = [np.exp(b), np.exp(b - estimators.Z * se), np.exp(b + estimators.Z * se), plain.pvalues[-1]]
    np.testing.assert_allclose([ours.estimate, ours.ci_low, ours.ci_high, ours.p_value], expected, rtol=1e-8)
    assert 1.3 < ours.estimate < 1.7
    # The start is the optimum itself (from 48 summed cells), so Newton confirms it in one step.
    y, exposure, groups = df["offences"].to_numpy(float), df["at_risk"].to_numpy(float), pd.factorize(df["person"])[0]
    cells = df.groupby(["rel_month", "evaluation", "post"], sort=False).ngroup().to_numpy()
    start = estimators.cells_optimum(y, X, exposure, cells)
    np.testing.assert_allclose(start, plain.params, atol=1e-9)
    assert estimators.poisson_clustered(y, X, exposure, groups, start).mle_retvals["iterations"] == 1


def test_a_rate_ratio_without_a_finite_optimum_is_fitted_as_irls_fits_it():
    # Every post-index event of the evaluation cohort in months the control has none in: the effect
    # runs off to infinity, Newton does not settle, and the fit is IRLS's, as before.
    import statsmodels.api as sm

    df = _month_rows(seed=10)
    df.loc[(df["evaluation"] == 0) & (df["rel_month"] == 3), "offences"] = 0
    df.loc[(df["evaluation"] == 1) & (df["post"] == 1) & (df["rel_month"] != 3), "offences"] = 0
    e, post = df["evaluation"].to_numpy(float), df["post"].to_numpy(float)
    months = sorted(df["rel_month"].unique())
    X = np.column_stack([*((df["rel_month"] == m).to_numpy(float) for m in months), e, e * post])
    y, exposure, groups = df["offences"].to_numpy(float), df["at_risk"].to_numpy(float), pd.factorize(df["person"])[0]
    plain = sm.GLM(y, X, family=sm.families.Poisson(), exposure=exposure).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    start = np.r_[np.zeros(len(months)), 0.0, 1.0]  # far from an optimum that is not there
    got = estimators.poisson_clustered(y, X, exposure, groups, start)
    np.testing.assert_allclose(got.params, plain.params, rtol=1e-12)


def test_a_month_profile_the_cohorts_do_not_share_is_withheld():
    # The evaluation cohort seen only in even months, the control only in odd ones: the cohort term
    # is a sum of month effects, and no rate ratio can be told from the profile.
    df = _month_rows(seed=11)
    df = df[(df["rel_month"] % 2 == 0) == (df["evaluation"] == 1)]
    got = estimators.count_did_months("offending_rr", df, "offences")
    assert got.estimate is None and "share too few months" in got.method
