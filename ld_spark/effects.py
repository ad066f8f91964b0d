"""The effect estimands: small aggregates out of Spark, statsmodels fits on the driver.

What reaches the driver: per person x cohort x period sums of the panel (about 4 rows a cohort
member), the cohorts' PNC records and court cases (a few rows a member), and
per person x cohort x month rows of the five Figure 1 outcomes for the event study. Never a
national event table. Person keys are replaced by integers before anything is collected.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark import economics, estimators
from ld_spark.cohorts import EVALUATION
from ld_spark.config import AnalysisConf, EconomicsConf
from ld_spark.contract import ESTIMANDS
from ld_spark.economics import CustodyInputs
from ld_spark.estimators import Estimate
from ld_spark.frames import Transform, collected

# Rate-ratio estimands of contract section 4 -> the panel column they are estimated on.
COUNT_ESTIMANDS = {
    "ae_attendance_rr": "ae_attendances",
    "mh_referral_rr": "mh_referrals",
    "mh_contact_rr": "mh_contacts",
    "mha_detention_rr": "mha_detentions",
    "iapt_referral_rr": "iapt_referrals",
    "iapt_attendance_rr": "iapt_attendances",
    "drug_referral_rr": "drug_referrals",
    "drug_attendance_rr": "drug_attendances",
}
# Justice rate ratios (proven-reoffending rules): people followed to the end of the waiting
# period only, person-month rows with months at risk as exposure (justice_month_rows).
JUSTICE_COUNT_ESTIMANDS = {
    "offending_rr": "offences",
    "police_contact_rr": "police_contacts",
}
PANEL_SUMS = list(COUNT_ESTIMANDS.values())
EVENT_STUDY_OUTCOMES = ["ae_attendances", "drug_referrals", "offences", "mh_referrals", "mha_detentions"]


def with_person_number(df: DataFrame) -> DataFrame:
    """Replace person_key by a 64-bit hash of it, `person` (the cluster id), before collecting.

    Collisions are negligible (about 3 in a million at ten million people) and could only
    merge two clusters, never change a count.
    """
    return df.withColumn("person", F.xxhash64("person_key")).drop("person_key")


def did_columns(df: DataFrame) -> DataFrame:
    """+ evaluation (1 for the evaluation cohort) and post (1 in the post period), as the estimators want."""
    return df.withColumn("evaluation", (F.col("cohort") == EVALUATION).cast("int")).withColumn(
        "post", (F.col("period") == "post").cast("int")
    )


def observed(outcome: str) -> str:
    """The column of the months an outcome is observed in (its exposure; series.unobserved_before)."""
    return f"{outcome}_months"


def _sums(outcomes: list[str]) -> list[F.Column]:
    """months, then each outcome's sum and its observed months (null where none is observed)."""
    return [
        F.count("*").alias("months"),
        *[F.sum(o).alias(o) for o in outcomes],
        *[F.count(o).alias(observed(o)) for o in outcomes],
    ]


def person_period_sums(outcomes: list[str]) -> Transform:
    """Panel -> person, evaluation, post, months, one sum per outcome and its observed months
    (the outcome's exposure: months its source covers)."""

    def _(panel: DataFrame) -> DataFrame:
        rows = panel.filter(F.col("in_outcomes") & F.col("period").isNotNull())
        sums = rows.groupBy("person_key", "cohort", "period").agg(*_sums(outcomes))
        return sums.transform(did_columns).transform(with_person_number).drop("cohort", "period")

    return _


def event_study_rows(outcomes: list[str], reference: tuple[int, int], months: tuple[int, int]) -> Transform:
    """Panel -> person, evaluation, level (month, or `ref` for the pooled reference), months, sums
    and observed months (person_period_sums)."""

    def _(panel: DataFrame) -> DataFrame:
        rel = F.col("rel_month")
        level = F.when(rel.between(*reference), F.lit("ref")).when(rel.between(*months), rel.cast("string"))
        rows = panel.filter("in_outcomes").withColumn("level", level).filter(F.col("level").isNotNull())
        sums = rows.groupBy("person_key", "cohort", "level").agg(*_sums(outcomes))
        return (
            sums.withColumn("evaluation", (F.col("cohort") == EVALUATION).cast("int"))
            .transform(with_person_number)
            .drop("cohort")
        )

    return _


def count_estimates(sums: pd.DataFrame) -> list[Estimate]:
    return [
        estimators.count_did(name, sums, column, exposure=observed(column)) for name, column in COUNT_ESTIMANDS.items()
    ]


def justice_month_rows(outcomes: list[str]) -> Transform:
    """Panel -> person, evaluation, post, rel_month, at_risk, one count per outcome: the pre/post
    person-months of people in the outcome analysis followed to the end of the waiting period."""

    def _(panel: DataFrame) -> DataFrame:
        rows = panel.filter(
            F.col("in_outcomes") & F.col("justice_followed") & F.col("period").isNotNull() & (F.col("at_risk") > 0)
        )
        return (
            rows.transform(did_columns)
            .transform(with_person_number)
            .select("person", "evaluation", "post", "rel_month", "at_risk", *outcomes)
        )

    return _


def justice_count_estimates(rows: pd.DataFrame) -> list[Estimate]:
    """offending_rr and police_contact_rr (proven-reoffending rules) on justice_month_rows()."""
    method = (
        "Poisson GLM DiD (cohort + month relative to index + evaluation x post), log months-at-risk offset "
        "(custody, days after the extract's end and the historic charge window before the index off), "
        "person-clustered SE; proven-reoffending rules, index offence left out"
    )
    fits = [
        estimators.count_did_months(name, rows, column, exposure="at_risk")
        for name, column in JUSTICE_COUNT_ESTIMANDS.items()
    ]
    # A fit that could not be made keeps its reason.
    return [
        dataclasses.replace(e, method=method if e.estimate is not None else f"{method}; {e.method.split('; ')[-1]}")
        for e in fits
    ]


def justice_estimates(offences: pd.DataFrame, cases: pd.DataFrame, horizon_days: int) -> list[Estimate]:
    """custody, sentence length and court timeliness (contract section 4): `offences` and `cases`
    hold the justice-followed people's records in the pre/post periods (justice_frames)."""
    sentenced = offences[offences["sentenced"]]
    custodial = sentenced[sentenced["custodial"]]
    windowed = cases[cases["hearings_observed"]].assign(one=1)
    return [
        estimators.binary_did(
            "custody_or", sentenced.assign(custodial=sentenced["custodial"].astype(int)), "custodial"
        ),
        estimators.linear_did("sentence_length_ratio", custodial, "custodial_days", log=True),
        estimators.restricted_mean_did(
            "court_duration_days_diff", cases, "duration_days", "duration_observed", horizon_days
        ),
        at_referral(
            estimators.restricted_mean_did(
                "court_duration_at_referral_days_diff",
                cases[(cases["post"] == 0) | cases["rel_month"].between(*AT_REFERRAL_MONTHS)],
                "duration_days",
                "duration_observed",
                horizon_days,
            )
        ),
        _per_case(estimators.count_did("hearings_per_case_rr", windowed, "hearings", exposure="one"), horizon_days),
        _per_case(estimators.count_did("adjournments_rr", windowed, "adjournments", exposure="one"), horizon_days),
        estimators.restricted_mean_did(
            "arrest_to_sentence_days_diff", cases, "arrest_to_sentence_days", "sentence_observed", horizon_days
        ),
    ]


# court_duration_at_referral_days_diff: offences committed at or just after the referral.
AT_REFERRAL_MONTHS = (0, 1)


def at_referral(est: Estimate) -> Estimate:
    first, last = AT_REFERRAL_MONTHS
    return dataclasses.replace(
        est, method=f"{est.method}; post-period cases of offences in months {first}..{last} only"
    )


def _per_case(est: Estimate, horizon_days: int) -> Estimate:
    """Per-case rate ratios: n counts people, the model counts cases (exposure 1 per case)."""
    return dataclasses.replace(
        est,
        method=est.method.replace(
            "log exposure offset", f"one row per case, hearings within {horizon_days} days of the first"
        ),
    )


def referred_people(sums: pd.DataFrame):
    """The people behind the referrals the economics is per: the evaluation cohort's post period."""
    return pd.unique(sums.loc[(sums["evaluation"] == 1) & (sums["post"] == 1), "person"])


def custody_inputs(offences: pd.DataFrame, sums: pd.DataFrame, custody_or: Estimate) -> CustodyInputs | None:
    """What the economics needs from the data (None when custody_or could not be estimated).
    Sentences are counted by sentencing occasion (economics.occasions)."""
    if custody_or.estimate is None:
        return None
    occasions = economics.occasions(offences)
    treated = (occasions["evaluation"] == 1) & (occasions["post"] == 1)
    post_eval = occasions[treated]
    referrals = len(referred_people(sums))
    untouched = occasions[occasions["custodial"].astype(bool) & ~treated]
    days = untouched["custodial_days"].dropna()
    if referrals == 0 or post_eval.empty or days.empty:
        return None
    return CustodyInputs(
        sentenced_per_referral=len(post_eval) / referrals,
        custody_rate=float(post_eval["custodial"].mean()),
        custody_or=custody_or.estimate,
        custody_or_low=custody_or.ci_low,
        custody_or_high=custody_or.ci_high,
        mean_sentence_days=float(days.mean()),
        median_sentence_days=float(days.median()),
        referrals=referrals,
        sentences=len(days),
        **estimators.concentration([days.to_numpy(float)]),
    )


def justice_rows(spec: str = "proven_reoffending") -> Transform:
    """The analysis layer's offences or court_cases -> the rows the justice estimands use, each
    in its period: proven_reoffending: people in the outcome analysis whose follow-up reaches the
    end of the waiting period, by the rules' clock; plain: everyone in the outcome analysis, by
    each record's own month (justice_frames)."""

    def _(df: DataFrame) -> DataFrame:
        if spec == "plain":
            df = df.drop("period").withColumnRenamed("clock_period", "period")
            return df.filter(F.col("in_outcomes") & F.col("period").isNotNull())
        return df.filter(F.col("in_outcomes") & F.col("justice_followed") & F.col("period").isNotNull())

    return _


def justice_frames(
    offences: DataFrame, cases: DataFrame, spec: str = "proven_reoffending"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohorts' offences and cases in the pre/post periods, for the outcome analysis.

    proven_reoffending: people in the outcome analysis whose follow-up reaches the end of the
    waiting period, placed by the rules' clock (index offence in month 0). plain: everyone in the
    outcome analysis, each record by its own offence month (the specification before the rules).
    """

    def prepared(df: DataFrame, columns: list[str]) -> pd.DataFrame:
        rows = df.transform(justice_rows(spec)).transform(did_columns)
        return collected(
            rows.transform(with_person_number).select("person", "evaluation", "post", "rel_month", *columns)
        )

    return (
        prepared(
            offences,
            [
                "index_offence",
                "convicted",
                "custodial_code",
                "sentenced",
                "custodial",
                "custodial_days",
                "sentencing_occasion",
            ],
        ),
        prepared(
            cases,
            [
                "completed",
                "duration_days",
                "duration_observed",
                "hearings",
                "adjournments",
                "hearings_observed",
                "hearings_all",
                "adjournments_all",
                "arrest_to_sentence_days",
                "sentence_observed",
            ],
        ),
    )


def plain_justice_estimates(offences: pd.DataFrame, cases: pd.DataFrame, sums: pd.DataFrame) -> list[Estimate]:
    """The justice estimands under the plain specification (justice_frames(spec="plain")), kept to
    show what the proven-reoffending rules change: every PNC record an offence, by its own month,
    index offence included; police contacts = records never convicted; exposure 12 months;
    custody and sentence among every conviction, whenever disposed; court times among completed
    cases only (OLS differences), every hearing counted. Not the contract's estimands."""
    base = sums[["person", "evaluation", "post", "months"]]
    per_period = (
        offences.assign(records=1, unconvicted=(~offences["convicted"]).astype(int))
        .groupby(["person", "evaluation", "post"], as_index=False)[["records", "unconvicted"]]
        .sum()
    )
    counts = base.merge(per_period, on=["person", "evaluation", "post"], how="left").fillna(
        {"records": 0, "unconvicted": 0}
    )
    convicted = offences[offences["convicted"]]
    custodial = convicted[convicted["custodial_code"]]
    completed = cases[cases["duration_observed"]].assign(one=1)
    sentenced = cases[cases["sentence_observed"]]
    plain = "plain specification (every record, own month, completed cases only)"

    def tagged(est: Estimate) -> Estimate:
        return dataclasses.replace(est, method=f"{est.method}; {plain}")

    return [
        tagged(e)
        for e in (
            estimators.count_did("offending_rr", counts, "records"),
            estimators.count_did("police_contact_rr", counts, "unconvicted"),
            estimators.binary_did(
                "custody_or", convicted.assign(custodial=convicted["custodial_code"].astype(int)), "custodial"
            ),
            estimators.linear_did("sentence_length_ratio", custodial, "custodial_days", log=True),
            estimators.linear_did("court_duration_days_diff", completed, "duration_days"),
            estimators.count_did("hearings_per_case_rr", completed, "hearings_all", exposure="one"),
            estimators.count_did("adjournments_rr", completed, "adjournments_all", exposure="one"),
            estimators.linear_did("arrest_to_sentence_days_diff", sentenced, "arrest_to_sentence_days"),
        )
    ]


class Frames(NamedTuple):
    """What the effect estimators read, collected from the analysis tables (person = hashed key)."""

    sums: pd.DataFrame  # person_period_sums(PANEL_SUMS)
    justice_rows: pd.DataFrame | None  # justice_month_rows (None under the plain specification)
    offences: pd.DataFrame  # justice_frames
    cases: pd.DataFrame

    def of(self, people: pd.Index) -> Frames:
        """The same frames for `people` only (a subgroup)."""
        return Frames(*(None if f is None else f[f["person"].isin(people)] for f in self))


def frames(panel: DataFrame, offences: DataFrame, cases: DataFrame, analysis: AnalysisConf) -> Frames:
    sums = collected(panel.transform(person_period_sums(PANEL_SUMS)))
    offences, cases = justice_frames(offences, cases, analysis.justice_spec)
    justice_rows = None
    if analysis.justice_spec != "plain":
        justice_rows = collected(panel.transform(justice_month_rows(list(JUSTICE_COUNT_ESTIMANDS.values()))))
    return Frames(sums, justice_rows, offences, cases)


def fitted(f: Frames, analysis: AnalysisConf, costs: EconomicsConf) -> list[Estimate]:
    """Every effect estimand of contract section 4 and the economics, from frames()."""
    sums, offences, cases = f.sums, f.offences, f.cases
    if analysis.justice_spec == "plain":
        # For comparison only (benchmarks/coverage.py): what the job reported before the rules.
        fits = [*count_estimates(sums), *plain_justice_estimates(offences, cases, sums)]
        offences = offences.assign(sentenced=offences["convicted"], custodial=offences["custodial_code"])
    else:
        fits = [
            *count_estimates(sums),
            *justice_count_estimates(f.justice_rows),
            *justice_estimates(offences, cases, analysis.restricted_mean_days),
        ]
    custody_or = next(e for e in fits if e.estimand == "custody_or")
    inputs = custody_inputs(offences, sums, custody_or)
    if inputs is not None:
        intervals = (
            economics.bootstrap_savings(
                offences, referred_people(sums), costs, costs.bootstrap_replicates, costs.bootstrap_seed
            )
            if costs.bootstrap_replicates
            else None
        )
        fits += economics.economic_estimates(inputs, costs, intervals)
    return fits


def estimate(
    panel: DataFrame, offences: DataFrame, cases: DataFrame, analysis: AnalysisConf, costs: EconomicsConf
) -> list[Estimate]:
    """The stage's entry point: every effect estimand of contract section 4 and the economics,
    from the panel, offences and court_cases analysis tables."""
    return fitted(frames(panel, offences, cases, analysis), analysis, costs)


# Subgroup estimates (results/subgroups.csv): the rate ratios and custody_or.
SUBGROUP_ESTIMANDS = [*COUNT_ESTIMANDS, *JUSTICE_COUNT_ESTIMANDS, "custody_or"]


def subgroup_estimates(f: Frames) -> list[Estimate]:
    """SUBGROUP_ESTIMANDS on frames() restricted to one subgroup (Frames.of)."""
    sentenced = f.offences[f.offences["sentenced"]]
    fits = [*count_estimates(f.sums)]
    if f.justice_rows is not None:
        fits += justice_count_estimates(f.justice_rows)
    fits.append(
        estimators.binary_did("custody_or", sentenced.assign(custodial=sentenced["custodial"].astype(int)), "custodial")
    )
    return [e for e in fits if e.estimand in SUBGROUP_ESTIMANDS]


def results_table(described: list[dict], fitted: list[Estimate]) -> list[dict]:
    """One row per estimand of the contract, in its order: the descriptive rows, the fitted ones,
    and "not estimable" for any the input could not support."""
    by_name = {r["estimand"]: r for r in described} | {e.estimand: e.row() for e in fitted}
    return [
        by_name.get(name) or Estimate(name, None, None, None, None, 0, "not estimable on this input").row()
        for name in ESTIMANDS
    ]


def event_study(panel: DataFrame, analysis: AnalysisConf) -> list[dict]:
    """Rate ratios by month relative to the index against the pooled reference months, for each
    of EVENT_STUDY_OUTCOMES (rows of results/event_study.csv before disclosure control)."""
    rows = collected(
        panel.transform(
            event_study_rows(EVENT_STUDY_OUTCOMES, analysis.event_study_reference, analysis.event_study_months)
        )
    )
    study = []
    for outcome in EVENT_STUDY_OUTCOMES:
        study += [
            {
                "outcome": outcome,
                "rel_month": int(r["level"]),
                "rr": r["rr"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "people": int(r["people"]),
                "df_resid": int(r["df_resid"]),
                "smallest_cell": int(r["smallest_cell"]),
            }
            for r in estimators.event_study(rows, outcome, exposure=observed(outcome)).to_dict("records")
        ]
    return sorted(study, key=lambda r: (EVENT_STUDY_OUTCOMES.index(r["outcome"]), r["rel_month"]))
