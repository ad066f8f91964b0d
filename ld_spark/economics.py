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

import numpy as np
import pandas as pd

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


def economic_estimates(
    inputs: CustodyInputs, conf: EconomicsConf, intervals: dict[str, tuple[float, float]] | None = None
) -> list[Estimate]:
    """Economics rows of the results table. intervals: each estimand's 95% interval from
    bootstrap_savings (every input re-estimated); without them the interval carries only the
    custody odds ratio's interval."""

    def at(odds_ratio: float) -> dict[str, float]:
        return savings(
            custody_avoided(inputs, odds_ratio), inputs.mean_sentence_days, inputs.median_sentence_days, conf
        )

    point, high, low = at(inputs.custody_or), at(inputs.custody_or_low), at(inputs.custody_or_high)
    method = (
        "arithmetic: custodial sentences avoided (from custody_or) x sentence days x share served x "
        "price per day; interval from custody_or's 95% interval"
    )
    if intervals:
        low = {name: interval[0] for name, interval in intervals.items()}
        high = {name: interval[1] for name, interval in intervals.items()}
        method = (
            f"arithmetic: custodial sentences avoided (from custody_or) x sentence days x share served x "
            f"price per day; 95% percentile interval of a person-level bootstrap ({conf.bootstrap_replicates} "
            "replicates) re-estimating custody_or, sentencing occasions per referral, custody rate and sentence days"
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


def person_weights(persons: int, replicates: int, seed: int) -> np.ndarray:
    """A person-level (cluster) bootstrap as weights: row b holds how many times each of the
    `persons` people is drawn in replicate b (a multinomial draw of `persons` from them)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(persons, np.full(persons, 1.0 / persons), size=replicates)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value with at least half the weight at or below it."""
    order = np.argsort(values, kind="mergesort")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def occasions(offences: pd.DataFrame) -> pd.DataFrame:
    """Sentenced offences -> one row per person, cohort, period and sentencing occasion: custodial
    if any sentence passed on it was, its days the longest (concurrent sentences run together)."""
    sentenced = offences[offences["sentenced"]]
    return sentenced.groupby(["person", "evaluation", "post", "sentencing_occasion"], as_index=False, dropna=False).agg(
        custodial=("custodial", "max"), custodial_days=("custodial_days", "max")
    )


def bootstrap_savings(
    offences: pd.DataFrame,
    referred: np.ndarray,
    conf: EconomicsConf,
    replicates: int,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of the savings estimands from a person-level bootstrap that
    re-estimates every input in each replicate: custody_or (logistic DiD on sentenced offences),
    sentencing occasions per referral, the custody rate, and the mean and median sentence.

    offences: justice_frames' offences (person, evaluation, post, sentenced, custodial,
    custodial_days, sentencing_occasion); referred: the people behind the referrals (the
    evaluation cohort's post period). A replicate in which custody_or is not estimable (a cell
    all one outcome) is left out; fewer than half estimable gives no interval.
    """
    import statsmodels.api as sm

    from ld_spark.estimators import did_design

    people = pd.Index(pd.unique(np.concatenate([offences["person"].to_numpy(), referred])))
    weights = person_weights(len(people), replicates, seed)
    sentenced = offences[offences["sentenced"]]
    fit_rows = people.get_indexer(sentenced["person"])
    X, y = did_design(sentenced), sentenced["custodial"].to_numpy(float)
    cells = sentenced["evaluation"].to_numpy() * 2 + sentenced["post"].to_numpy()
    occ = occasions(offences)
    occ_rows = people.get_indexer(occ["person"])
    treated = ((occ["evaluation"] == 1) & (occ["post"] == 1)).to_numpy()
    custodial = occ["custodial"].to_numpy(bool)
    days = occ["custodial_days"].to_numpy(float)
    untouched = custodial & ~treated & np.isfinite(days)
    referral_rows = people.get_indexer(referred)
    draws = []
    for w in weights:
        fw = w[fit_rows].astype(float)
        positive = np.bincount(cells, weights=fw * y, minlength=4)
        total = np.bincount(cells, weights=fw, minlength=4)
        if ((positive == 0) | (positive == total)).any():
            continue
        odds_ratio = float(np.exp(sm.GLM(y, X, family=sm.families.Binomial(), freq_weights=fw).fit().params[-1]))
        ow = w[occ_rows].astype(float)
        referrals, sentenced_here = w[referral_rows].sum(), ow[treated].sum()
        if referrals == 0 or sentenced_here == 0 or ow[untouched].sum() == 0:
            continue
        inputs = CustodyInputs(
            sentenced_per_referral=sentenced_here / referrals,
            custody_rate=float((ow * custodial)[treated].sum() / sentenced_here),
            custody_or=odds_ratio,
            custody_or_low=odds_ratio,
            custody_or_high=odds_ratio,
            mean_sentence_days=float(np.average(days[untouched], weights=ow[untouched])),
            median_sentence_days=weighted_median(days[untouched], ow[untouched]),
            referrals=int(referrals),
        )
        if not 0 < inputs.custody_rate < 1:
            continue
        draws.append(
            savings(custody_avoided(inputs, odds_ratio), inputs.mean_sentence_days, inputs.median_sentence_days, conf)
        )
    if len(draws) < replicates / 2:
        return {}
    table = pd.DataFrame(draws)
    return {name: (float(table[name].quantile(0.025)), float(table[name].quantile(0.975))) for name in table.columns}
