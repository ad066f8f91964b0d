"""The economics arithmetic reproduces the brief's published figures from the brief's inputs."""

from __future__ import annotations

import pytest

from ld_spark.economics import CustodyInputs, custody_avoided, economic_estimates, savings

# The brief's custody finding ("almost half as likely") on an illustrative custody rate and
# caseload, and sentence lengths solved from its figures: average x 0.5 x custodial sentences
# avoided = 858 / (35,371 / 365) = 8.854 custody days avoided per referral; median / average = 294 / 933.
AVOIDED = 0.0452
MEAN_DAYS = 858 / (35371 / 365) / 0.5 / AVOIDED
MEDIAN_DAYS = MEAN_DAYS * 294 / 933


def test_brief_inputs_reproduce_858_933_294_and_659_per_referral_and_the_totals(config):
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
