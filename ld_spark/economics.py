"""Economics of diversion from custody, per L&D referral not declined (contract section 4).

    custody days avoided per referral = custodial sentences avoided per referral
                                        x sentence length (days) x share of a sentence served
    savings per referral  = days avoided x cost per prison day           (diversion only)
                          + days avoided x output per day outside prison (with productivity)
    totals                = savings per referral x referrals not declined per year
                            (low: median sentence with productivity; high: average with it)

Custodial sentences avoided come from this run's data: the evaluation cohort's sentenced
offences in the post period, at the custody rate observed there against the rate the custody
odds ratio implies without L&D. Sentence lengths are those L&D did not touch (the historic
control's and the evaluation cohort's pre-period custodial sentences). Every price is in conf.
"""

from __future__ import annotations

from dataclasses import dataclass

from ld_spark.config import EconomicsConf
from ld_spark.estimators import Estimate


@dataclass(frozen=True)
class CustodyInputs:
    """What the run's data say, per referral not declined."""

    sentenced_per_referral: float  # sentenced offences in the post period per referral
    custody_rate: float  # share of them given custody (with L&D)
    custody_or: float  # the DiD odds ratio and its 95% interval
    custody_or_low: float
    custody_or_high: float
    mean_sentence_days: float
    median_sentence_days: float
    referrals: int  # referrals not declined behind the rates
    sentences: int | None = None  # custodial sentences behind the mean and median
    top_share: float | None = None  # how far a few sentences dominate them (estimators.concentration)
    p_ratio: float | None = None


def custody_avoided(inputs: CustodyInputs, odds_ratio: float) -> float:
    """Custodial sentences avoided per referral: counterfactual minus observed custody."""
    p1 = inputs.custody_rate
    odds0 = (p1 / (1 - p1)) / odds_ratio
    p0 = odds0 / (1 + odds0)
    return inputs.sentenced_per_referral * (p0 - p1)


def per_referral(avoided: float, sentence_days: float, conf: EconomicsConf, productivity: bool) -> float:
    days = avoided * sentence_days * conf.share_of_sentence_served
    per_day = conf.cost_per_prisoner_year_gbp / 365 + (conf.output_per_day_gbp if productivity else 0.0)
    return days * per_day


def savings(avoided: float, mean_days: float, median_days: float, conf: EconomicsConf) -> dict[str, float]:
    """The economics estimands for one value of custodial sentences avoided per referral."""
    avg = per_referral(avoided, mean_days, conf, productivity=False)
    avg_prod = per_referral(avoided, mean_days, conf, productivity=True)
    median_prod = per_referral(avoided, median_days, conf, productivity=True)
    n = conf.referrals_not_declined_per_year
    return {
        "savings_per_referral_avg_gbp": avg,
        "savings_per_referral_avg_prod_gbp": avg_prod,
        "savings_per_referral_median_prod_gbp": median_prod,
        "cost_per_referral_gbp": conf.programme_cost_per_referral_gbp,
        "savings_total_low_gbp": median_prod * n,
        "savings_total_high_gbp": avg_prod * n,
    }


def economic_estimates(inputs: CustodyInputs, conf: EconomicsConf) -> list[Estimate]:
    """Economics rows of the results table; intervals carry the custody odds ratio's interval."""

    def at(odds_ratio: float) -> dict[str, float]:
        return savings(
            custody_avoided(inputs, odds_ratio), inputs.mean_sentence_days, inputs.median_sentence_days, conf
        )

    point, high, low = at(inputs.custody_or), at(inputs.custody_or_low), at(inputs.custody_or_high)
    method = (
        "arithmetic: custodial sentences avoided (from custody_or) x sentence days x share served x "
        "price per day; interval from custody_or's 95% interval"
    )
    rows = []
    for name, value in point.items():
        if name == "cost_per_referral_gbp":
            rows.append(
                Estimate(
                    name, value, None, None, None, inputs.referrals, "programme cost per referral not declined (conf)"
                )
            )
        else:
            rows.append(
                Estimate(
                    name,
                    value,
                    low[name],
                    high[name],
                    None,
                    inputs.referrals,
                    method,
                    people=inputs.referrals,
                    summarised_values=inputs.sentences,
                    top_share=inputs.top_share,
                    p_ratio=inputs.p_ratio,
                )
            )
    return rows
