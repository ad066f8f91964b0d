"""The economics: its arithmetic, sentencing occasions, and the person-level bootstrap of its inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ld_spark.economics import (
    CustodyInputs,
    bootstrap_savings,
    custody_avoided,
    economic_estimates,
    occasions,
    person_weights,
    savings,
    weighted_median,
)

# The brief's custody finding ("almost half as likely") on an illustrative custody rate and
# caseload, and sentence lengths solved from its figures: average x 0.5 x custodial sentences
# avoided = 858 / (35,371 / 365) = 8.854 custody days avoided per referral; median / average = 294 / 933.
AVOIDED = 0.0452
MEAN_DAYS = 858 / (35371 / 365) / 0.5 / AVOIDED
MEDIAN_DAYS = MEAN_DAYS * 294 / 933


def test_algebra_round_trips_the_brief_858_933_294_659_from_inputs_solved_from_those_figures(config):
    """Only a check of the arithmetic: the sentence lengths here are solved from the brief's own
    GBP 858 / 933 / 294, so getting them back shows the formulas and prices are the brief's, not
    that the data would give them."""
    got = savings(AVOIDED, MEAN_DAYS, MEDIAN_DAYS, config.economics)
    assert round(got["savings_per_referral_avg_gbp"]) == 858
    assert round(got["savings_per_referral_avg_prod_gbp"]) == 933
    assert round(got["savings_per_referral_median_prod_gbp"]) == 294
    assert got["cost_per_referral_gbp"] == 659
    assert round(got["savings_total_low_gbp"] / 1e6, 1) == 13.1
    assert round(got["savings_total_high_gbp"] / 1e6, 1) == 41.5
    assert (
        round(got["savings_per_referral_avg_gbp"] * config.economics.referrals_not_declined_per_year / 1e6, 1) == 38.1
    )


def test_custody_avoided_follows_the_odds_ratio():
    inputs = CustodyInputs(
        sentenced_per_referral=0.5,
        custody_rate=0.2,
        custody_or=0.5,
        custody_or_low=0.3,
        custody_or_high=0.9,
        mean_sentence_days=300,
        median_sentence_days=100,
        referrals=1000,
    )
    # Observed odds 0.25 -> without L&D odds 0.5 -> rate 1/3; 0.5 x (1/3 - 0.2) = 0.0667.
    assert custody_avoided(inputs, 0.5) == pytest.approx(0.5 * (1 / 3 - 0.2))
    assert custody_avoided(inputs, 1.0) == pytest.approx(0.0)


def test_economic_rows_carry_the_odds_ratio_interval_in_the_right_order(config):
    inputs = CustodyInputs(
        sentenced_per_referral=0.5,
        custody_rate=0.2,
        custody_or=0.5,
        custody_or_low=0.3,
        custody_or_high=0.9,
        mean_sentence_days=300,
        median_sentence_days=100,
        referrals=1000,
    )
    rows = {r.estimand: r for r in economic_estimates(inputs, config.economics)}
    avg = rows["savings_per_referral_avg_gbp"]
    assert avg.ci_low < avg.estimate < avg.ci_high
    assert rows["savings_total_low_gbp"].estimate < rows["savings_total_high_gbp"].estimate


def test_person_bootstrap_gives_the_known_standard_error_of_a_mean():
    """Means of n draws with sd 10: the bootstrap's spread is the sample sd / sqrt(n)."""
    values = np.random.default_rng(5).normal(100, 10, 400)
    weights = person_weights(len(values), 4000, seed=6)
    means = (weights * values).sum(axis=1) / weights.sum(axis=1)
    assert (weights.sum(axis=1) == 400).all()
    assert means.std() == pytest.approx(values.std() / np.sqrt(400), rel=0.05)
    assert weighted_median(np.array([5.0, 1.0, 3.0]), np.array([1, 1, 1])) == 3.0
    assert weighted_median(np.array([5.0, 1.0, 3.0]), np.array([0, 3, 1])) == 1.0


def test_concurrent_sentences_on_one_occasion_count_once_at_the_longest():
    offences = pd.DataFrame(
        {
            "person": [1, 1, 1, 2],
            "evaluation": [1, 1, 1, 1],
            "post": [1, 1, 1, 1],
            "sentenced": [True, True, True, False],
            "custodial": [True, False, True, False],
            "custodial_days": [90.0, None, 30.0, None],
            "sentencing_occasion": [1, 1, 2, None],
        }
    )
    got = occasions(offences).sort_values("sentencing_occasion")
    assert got[["person", "sentencing_occasion", "custodial", "custodial_days"]].values.tolist() == [
        [1, 1, True, 90.0],
        [1, 2, True, 30.0],
    ]


def _justice_offences(seed: int, sentence_sigma: float) -> pd.DataFrame:
    """Sentenced offences of 1,200 people (one each), custody odds halved in the evaluation
    cohort's post period; sentence days lognormal with `sentence_sigma`."""
    rng = np.random.default_rng(seed)
    n = 1200
    evaluation, post = rng.integers(0, 2, n), rng.integers(0, 2, n)
    odds = 0.4 * np.where((evaluation == 1) & (post == 1), 0.5, 1.0)
    custodial = rng.random(n) < odds / (1 + odds)
    days = np.where(custodial, np.exp(rng.normal(np.log(120), sentence_sigma, n)), np.nan)
    return pd.DataFrame(
        {
            "person": np.arange(n),
            "evaluation": evaluation,
            "post": post,
            "sentenced": True,
            "custodial": custodial,
            "custodial_days": days,
            "sentencing_occasion": 1,
        }
    )


def test_bootstrap_interval_widens_with_the_spread_of_sentence_lengths(config):
    """custody_or's interval alone ignores how uncertain the mean sentence is; the bootstrap,
    re-estimating every input, gives a wider interval when sentences vary more (same custody data)."""
    narrow = _justice_offences(7, sentence_sigma=0.05)
    wide = narrow.assign(custodial_days=_justice_offences(7, sentence_sigma=1.6)["custodial_days"])
    referred = narrow.loc[(narrow["evaluation"] == 1) & (narrow["post"] == 1), "person"].to_numpy()
    name = "savings_per_referral_avg_gbp"
    low_n, high_n = bootstrap_savings(narrow, referred, config.economics, 300, seed=1)[name]
    low_w, high_w = bootstrap_savings(wide, referred, config.economics, 300, seed=1)[name]
    assert (high_w - low_w) > 1.5 * (high_n - low_n)
    assert low_n < high_n and low_n > 0  # custody halved: savings above zero with this many sentences
