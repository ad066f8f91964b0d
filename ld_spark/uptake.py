"""Programme delivery: onward referrals by site (funnel plot) and declining by vulnerability.

Both read the referred people of the evaluation window (one row each, their first referral
there, consenting or not: these are the L&D services' own case records).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.cohorts import declined
from ld_spark.contract import ONWARD_REFERRALS, VULNERABILITIES
from ld_spark.estimators import Estimate, Z, smallest_count
from ld_spark.frames import collected, union_all


def site_onward_counts(referred: DataFrame) -> DataFrame:
    """Referred people -> site_code, referrals (not declined), and people onward-referred to each service."""
    offered = referred.filter(~declined())
    kinds = F.split(F.coalesce(F.col("onward_referrals"), F.lit("")), ";")
    return (
        offered.groupBy("site_code")
        .agg(
            F.count("*").alias("referrals"),
            *[F.sum(F.array_contains(kinds, k).cast("int")).alias(k) for k in ONWARD_REFERRALS],
        )
        .orderBy("site_code")
    )


def declined_by_vulnerability(referred: DataFrame) -> DataFrame:
    """Referred people -> vulnerability, people with it, of whom declined (and the same without it)."""
    said_no = declined().cast("int")
    parts = []
    for v in VULNERABILITIES:
        flag = F.coalesce(F.col(f"vuln_{v}"), F.lit(False))
        parts.append(
            referred.agg(
                F.lit(v).alias("vulnerability"),
                F.sum(flag.cast("int")).alias("people"),
                F.sum(F.when(flag, said_no).otherwise(0)).alias("declined"),
                F.sum((~flag).cast("int")).alias("people_without"),
                F.sum(F.when(~flag, said_no).otherwise(0)).alias("declined_without"),
            )
        )
    return union_all(parts)


def funnel_limits(p: float, n: int, z: float) -> tuple[float, float]:
    """Control limits for a proportion p at n referrals (normal approximation, clipped to [0, 1])."""
    half = z * math.sqrt(p * (1 - p) / n) if n else 1.0
    return max(0.0, p - half), min(1.0, p + half)


def site_heterogeneity(estimand: str, sites: list[dict], service: str) -> Estimate:
    """Pearson chi-square test that the share of referrals onward-referred to `service` is the
    same at every site (sites: site_onward_counts rows, exact); estimate = chi-square."""
    from scipy import stats

    used = [r for r in sites if r["referrals"]]
    n = sum(r["referrals"] for r in used)
    method = f"Pearson chi-square test of equal {service} onward-referral rates across sites"
    table = np.array([[r[service], r["referrals"] - r[service]] for r in used], dtype=float)
    if len(used) < 2 or (table.sum(axis=0) == 0).any():
        return Estimate(
            estimand, None, None, None, None, n, f"{method}; not estimable: fewer than two sites or one outcome"
        )
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    return Estimate(
        estimand,
        float(chi2),
        None,
        None,
        float(p),
        n,
        f"{method} ({len(used)} sites, {dof} df)",
        people=n,
        df_resid=n - len(used),
        test_df=int(dof),
    )


def declined_flags(referred: DataFrame) -> pd.DataFrame:
    """Referred people -> declined (0/1) and each vulnerability flag (0/1), in a fixed row order."""
    flags = [F.coalesce(F.col(f"vuln_{v}"), F.lit(False)).cast("int").alias(v) for v in VULNERABILITIES]
    return collected(referred.select(declined().cast("int").alias("declined"), *flags))


def declined_odds_ratio(estimand: str, flags: pd.DataFrame, exposure: str) -> Estimate:
    """Odds ratio of declining with the `exposure` vulnerability against without, adjusted for the
    other flags: logistic regression, one row per referred person, robust (HC1) SE. A flag that
    never varies among these people is left out of the adjustment."""
    import statsmodels.api as sm

    n = len(flags)
    method = f"logistic regression of declining on {exposure}, adjusted for the other vulnerability flags, HC1 SE"
    others = [v for v in VULNERABILITIES if v != exposure and flags[v].nunique() > 1]
    cells = flags.groupby(exposure)["declined"].agg(["size", "sum"])
    if len(cells) < 2 or ((cells["sum"] == 0) | (cells["sum"] == cells["size"])).any():
        return Estimate(estimand, None, None, None, None, n, f"{method}; not estimable: a group is all one outcome")
    X = sm.add_constant(flags[[exposure, *others]].to_numpy(float), has_constant="add")
    result = sm.GLM(flags["declined"].to_numpy(float), X, family=sm.families.Binomial()).fit(cov_type="HC1")
    b, se, p = float(result.params[1]), float(result.bse[1]), float(result.pvalues[1])
    return Estimate(
        estimand,
        math.exp(b),
        math.exp(b - Z * se),
        math.exp(b + Z * se),
        p,
        n,
        method,
        people=n,
        df_resid=int(result.df_resid),
        # The 2 x 2 of declining by the flag (declined_by_vulnerability.csv) is what it rests on.
        smallest_cell=smallest_count(
            flags.assign(person=range(n), accepted=1 - flags["declined"]), [exposure], "declined", "accepted"
        ),
    )


def delivery_estimates(referred: DataFrame, sites: list[dict]) -> list[Estimate]:
    """The brief's delivery findings as results-table rows (contract section 4c): onward referral
    varied between sites (IAPT, specialist mental health), and people with substance-misuse
    needs were more likely to decline. sites: site_onward_counts rows (exact)."""
    return [
        site_heterogeneity("site_heterogeneity_iapt_p", sites, "iapt"),
        site_heterogeneity("site_heterogeneity_mh_p", sites, "mh_specialist"),
        declined_odds_ratio("declined_substance_or", declined_flags(referred), "substance_misuse"),
    ]
