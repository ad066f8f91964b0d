"""The brief's further findings (contract section 4c) and who the outcome analysis leaves out.

Every finding is a contrast on frames the effects stage already reduces to: per person x cohort x
period sums of the panel, plus one row per cohort member with what is known of them before the
index (prior PNC, health and NDTMS records, vulnerability flags, pathway, point of contact, sex,
age band). Spark does the reduction; statsmodels or a ratio estimator the rest (estimators.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark import estimators
from ld_spark.cohorts import EVALUATION, declined
from ld_spark.config import AnalysisConf
from ld_spark.contract import VULNERABILITIES, source_of
from ld_spark.effects import observed, person_period_sums, with_person_number
from ld_spark.estimators import Estimate
from ld_spark.events import HEALTH_CONTACT, OUTCOMES
from ld_spark.frames import Transform, collected

SUMS = ["ae_attendances", HEALTH_CONTACT, "iapt_referrals", "iapt_attendances", "drug_referrals", "drug_attendances"]
# Conversion estimands -> (attendances, referrals) of one service (panel columns).
CONVERSIONS = {
    "iapt_conversion_diff": ("iapt_attendances", "iapt_referrals"),
    "drug_conversion_diff": ("drug_attendances", "drug_referrals"),
}
FLAGS = [f"vuln_{v}" for v in VULNERABILITIES]
# Age at the index (index year - year of birth): the bands of the representativeness table.
AGE_BANDS = [(0, 17, "under 18"), (18, 24, "18-24"), (25, 34, "25-34"), (35, 44, "35-44"), (45, 54, "45-54")]
OLDEST_BAND = "55 and over"
UNKNOWN = "not known"


def prior_history(first: int, last: int) -> Transform:
    """Panel -> person_key, cohort, prior_cjs, prior_health, prior_drug (1/0): any PNC record
    (proven offence or police contact), any health-source record, and any NDTMS referral or
    treatment start, in months [first, last] of the index; prior_drug_unobserved (1/0): some of
    those months came before NDTMS began (series.unobserved_before)."""

    def _(panel: DataFrame) -> DataFrame:
        rows = panel.filter(F.col("rel_month").between(first, last))

        def any_of(*columns: str) -> F.Column:
            # A month before a source began (null, series.unobserved_before) holds no record of it.
            return (F.sum(sum(F.coalesce(F.col(c), F.lit(0)) for c in columns)) > 0).cast("int")

        return rows.groupBy("person_key", "cohort").agg(
            any_of("offences", "police_contacts").alias("prior_cjs"),
            any_of(HEALTH_CONTACT).alias("prior_health"),
            any_of("drug_referrals", "drug_attendances").alias("prior_drug"),
            F.max(F.col("drug_referrals").isNull().cast("int")).alias("prior_drug_unobserved"),
        )

    return _


PRIOR = ("prior_cjs", "prior_health", "prior_drug", "prior_drug_unobserved")


def age_band(age: F.Column) -> F.Column:
    band = F.when(age.isNull(), F.lit(UNKNOWN))
    for low, high, label in AGE_BANDS:
        band = band.when(age.between(low, high), F.lit(label))
    return band.otherwise(F.lit(OLDEST_BAND))


def members(cohorts: DataFrame, panel: DataFrame, persons: DataFrame, prior: tuple[int, int]) -> DataFrame:
    """Cohorts (analysis layer) -> one row per person x cohort: person (hashed), evaluation,
    in_outcomes and declined (1/0; under intention to treat the declined are in the outcomes too), prior_history's flags, the vulnerability flags, pathway,
    point_of_contact, sex and age band at the index."""
    age = F.substring("index_month", 1, 4).cast("int") - F.col("year_of_birth")
    return (
        cohorts.join(panel.transform(prior_history(*prior)), on=["person_key", "cohort"], how="left")
        .join(persons.select("person_key", "year_of_birth", "sex"), on=["person_key"], how="left")
        .select(
            "person_key",
            (F.col("cohort") == EVALUATION).cast("int").alias("evaluation"),
            F.col("in_outcomes").cast("int").alias("in_outcomes"),
            declined().cast("int").alias("declined"),
            *[F.coalesce(F.col(c), F.lit(0)).alias(c) for c in PRIOR],
            *[F.coalesce(F.col(c), F.lit(False)).cast("int").alias(c) for c in FLAGS],
            F.coalesce("pathway", F.lit(UNKNOWN)).alias("pathway"),
            F.coalesce("point_of_contact", F.lit(UNKNOWN)).alias("point_of_contact"),
            F.coalesce("sex", F.lit(UNKNOWN)).alias("sex"),
            age_band(age).alias("age_band"),
        )
        .transform(with_person_number)
    )


class Frames(NamedTuple):
    sums: pd.DataFrame  # person, evaluation, post, months, SUMS (people in the outcome analysis)
    people: pd.DataFrame  # members()
    scores: pd.DataFrame  # person, rel_month, score: evaluation cohort's TOP reviews in the pre period


def frames(
    panel: DataFrame, cohorts: DataFrame, persons: DataFrame, scores: DataFrame, analysis: AnalysisConf
) -> Frames:
    """What the findings need from Spark, collected in a fixed order."""
    pre = scores.filter(
        F.col("in_outcomes") & (F.col("cohort") == EVALUATION) & F.col("rel_month").between(*analysis.pre_months)
    )
    return Frames(
        collected(panel.transform(person_period_sums(SUMS))),
        collected(members(cohorts, panel, persons, analysis.prior_contact_months)),
        collected(pre.transform(with_person_number).select("person", "rel_month", "score")),
    )


def estimates(f: Frames) -> list[Estimate]:
    """Every contract 4c row this module owns, from frames()."""
    outcome_people = f.people[f.people["in_outcomes"] == 1]
    with_history = f.sums.merge(outcome_people, on=["person", "evaluation"], how="inner")
    post_eval = with_history[(with_history["evaluation"] == 1) & (with_history["post"] == 1)]
    return [
        estimators.count_did_ratio(
            "ae_prior_cjs_rr", with_history, "ae_attendances", "prior_cjs", exposure=observed("ae_attendances")
        ),
        estimators.adjusted_rate_ratio(
            "cjs_predicts_health_rr", post_eval, HEALTH_CONTACT, "months", ["prior_cjs", *FLAGS]
        ),
        new_to_treatment(post_eval),
        *[estimators.ratio_did(name, f.sums, a, r) for name, (a, r) in CONVERSIONS.items()],
        estimators.slope("self_reported_health_slope", f.scores, "score", "rel_month"),
    ]


def new_to_treatment(post_eval: pd.DataFrame) -> Estimate:
    """drug_referral_new_pct: the share of the evaluation cohort's post-period NDTMS referrals made
    by people with no NDTMS record in their prior months (post_eval: person-period sums with
    members' flags, evaluation x post).

    Someone whose prior months began before NDTMS did, with no record of it after, has no record to
    find there and counts as new, as pct_no_prior_contact counts them; the method says so when any
    of the share's referrals are theirs."""
    share = estimators.weighted_share(
        "drug_referral_new_pct", post_eval.assign(new=1 - post_eval["prior_drug"]), "drug_referrals", "new"
    )
    unknown = (
        (post_eval["drug_referrals"] > 0) & (post_eval["prior_drug"] == 0) & (post_eval["prior_drug_unobserved"] == 1)
    )
    if not unknown.any():
        return share
    source = source_of(OUTCOMES["drug_referrals"].table).upper()
    said = f"; counted as new: people whose prior months began before {source} did (no record of them before it began)"
    return replace(share, method=share.method + said)


SUBGROUPS = ["pathway", "point_of_contact"]


def subgroups(people: pd.DataFrame) -> dict[str, pd.Index]:
    """`variable=level` -> the people (hashed) in that subgroup, in a fixed order."""
    evaluation = people[people["evaluation"] == 1]
    groups = {}
    for variable in SUBGROUPS:
        for level, rows in sorted(evaluation.groupby(variable)["person"]):
            groups[f"{variable}={level}"] = pd.Index(rows.unique())
    return groups


# Representativeness: consenting (in the outcome analysis) against declined evaluation-cohort
# members, on what is known of both before the index.
CHARACTERISTICS = {
    **{c: c for c in FLAGS},
    "prior_health": "prior_health",
    "prior_cjs": "prior_cjs",
    "sex": "sex",
    "age_band": "age_band",
}


def representativeness(people: pd.DataFrame) -> list[dict]:
    """Evaluation-cohort members by characteristic level: consenting and declined people with it,
    and each group's total (exact counts; disclosure control computes the percentages)."""
    evaluation = people[people["evaluation"] == 1]
    groups = {
        "consenting": evaluation[evaluation["declined"] == 0],
        "declined": evaluation[evaluation["declined"] == 1],
    }
    rows = []
    for name, column in CHARACTERISTICS.items():
        binary = column.startswith(("vuln_", "prior_"))
        levels = [1] if binary else sorted(evaluation[column].dropna().unique())
        for level in levels:
            row = {"characteristic": name.removeprefix("vuln_"), "level": "yes" if binary else str(level)}
            for group, frame in groups.items():
                row[group] = int((frame[column] == level).sum())
                row[f"{group}_total"] = len(frame)
            rows.append(row)
    return rows
