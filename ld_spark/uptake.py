"""Programme delivery: onward referrals by site (funnel plot) and declining by vulnerability.

Both read the referred people of the evaluation window (one row each, their first referral
there, consenting or not: these are the L&D services' own case records).
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.cohorts import declined
from ld_spark.contract import ONWARD_REFERRALS, VULNERABILITIES
from ld_spark.frames import union_all


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
