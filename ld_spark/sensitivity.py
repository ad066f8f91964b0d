"""Sensitivity and robustness (contract section 4b): the effect estimands again under the
specifications a referee asks for, and a pre-trend test per estimand.

Every analysis but the linkage thresholds is a transform of the three analysis tables the
estimators read (panel, offences, court_cases), so it costs a re-estimation, never a re-run:

- baseline_m24_m13: the pre period is months -24..-13, before the crisis that precedes an arrest
  (how much of an effect is regression to the mean);
- intention_to_treat: people who declined stay in the outcome analysis;
- overlap_only: only people in both cohorts (each is their own control);
- placebo_index: every index moved 12 months earlier, so "post" is months -12..-1 of the real
  index and the "effect" should be null. Records keep the proven-reoffending classification made
  on the real index (a month outside the real periods waits from itself);
- pre_trend: the cohorts' difference in each month -12..-1 against the -24..-13 reference,
  tested jointly (estimators.pre_trend).

match_threshold_* re-decide the linkage at another match probability and rebuild the tables from
cohorts onward (pipeline.Job.sensitivity); this module only estimates on what it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark import effects, estimators
from ld_spark.config import AnalysisConf, EconomicsConf
from ld_spark.contract import ESTIMANDS, RESULT_SCHEMA
from ld_spark.estimators import Estimate
from ld_spark.frames import Transform, collected
from ld_spark.series import with_period

# The exact table (analysis/sensitivity_estimates): the results table's columns with the analysis first.
SCHEMA = f"analysis string, {RESULT_SCHEMA}"
MAIN = "main"
BASELINE = "baseline_m24_m13"
BASELINE_MONTHS = (-24, -13)
INTENTION_TO_TREAT = "intention_to_treat"
OVERLAP_ONLY = "overlap_only"
PLACEBO = "placebo_index"
PLACEBO_SHIFT_MONTHS = 12
PRE_TREND = "pre_trend"
TRANSFORMS = (MAIN, BASELINE, INTENTION_TO_TREAT, OVERLAP_ONLY, PLACEBO)  # specifications(), in order


def threshold_analysis(threshold: float) -> str:
    """The analysis name of a linkage re-decided at `threshold` (contract: match_threshold_0.80)."""
    return f"match_threshold_{threshold:.2f}"


class Tables(NamedTuple):
    """The analysis tables the effect estimators read."""

    panel: DataFrame
    offences: DataFrame
    cases: DataFrame

    def transform(self, step: Transform) -> Tables:
        return Tables(*(df.transform(step) for df in self))


def shifted(months: int) -> Transform:
    """rel_month moved `months` later: an index moved that many months earlier."""

    def _(df: DataFrame) -> DataFrame:
        return df.withColumn("rel_month", F.col("rel_month") + months)

    return _


def everyone_in_outcomes(df: DataFrame) -> DataFrame:
    return df.withColumn("in_outcomes", F.lit(True))


def in_both_cohorts(panel: DataFrame) -> Transform:
    """Rows of people who are in both cohorts (by the panel's person x cohort rows)."""
    both = panel.groupBy("person_key").agg(F.countDistinct("cohort").alias("cohorts")).filter("cohorts = 2")

    def _(df: DataFrame) -> DataFrame:
        return df.join(both.select("person_key"), on=["person_key"], how="left_semi")

    return _


def specifications(a: AnalysisConf) -> dict[str, Callable[[Tables], Tables]]:
    """Each analysis that re-estimates on transformed tables, by its contract name, in order."""
    return {
        MAIN: lambda t: t,
        BASELINE: lambda t: t.transform(with_period(BASELINE_MONTHS, a.post_months)),
        INTENTION_TO_TREAT: lambda t: t.transform(everyone_in_outcomes),
        OVERLAP_ONLY: lambda t: t.transform(in_both_cohorts(t.panel)),
        PLACEBO: lambda t: t.transform(shifted(PLACEBO_SHIFT_MONTHS)).transform(
            with_period(a.pre_months, a.post_months)
        ),
    }


def rows(analysis: str, fitted: list[Estimate]) -> list[dict]:
    """sensitivity.csv rows (with what disclosure control needs) of one analysis's estimates."""
    return [{"analysis": analysis, **e.row()} for e in fitted]


def estimated(tables: Tables, a: AnalysisConf, costs: EconomicsConf, analysis: str) -> list[dict]:
    """Every effect estimand (and the economics resting on custody_or) under one specification."""
    t = specifications(a)[analysis](tables)
    return rows(analysis, effects.estimate(t.panel, t.offences, t.cases, a, costs))


# Pre-trend tests: which frame, outcome and model family each estimand is tested with.
JUSTICE_PRE_TRENDS = {
    "custody_or": ("sentenced", "custodial", "binomial"),
    "sentence_length_ratio": ("custodial", "custodial_days", "log_linear"),
    "court_duration_days_diff": ("cases", "duration_days", "restricted_mean"),
    "hearings_per_case_rr": ("windowed", "hearings", "poisson"),
    "adjournments_rr": ("windowed", "adjournments", "poisson"),
    "arrest_to_sentence_days_diff": ("cases", "arrest_to_sentence_days", "restricted_mean"),
}
EVENTS_OF = {"court_duration_days_diff": "duration_observed", "arrest_to_sentence_days_diff": "sentence_observed"}


def with_level(frame: pd.DataFrame) -> pd.DataFrame:
    """level = `ref` in the reference months (post = 0 once relabelled), else the month."""
    return frame.assign(level=frame["rel_month"].where(frame["post"] == 1, "ref").astype(str))


def pre_trend_frames(tables: Tables, a: AnalysisConf) -> dict[str, pd.DataFrame]:
    """The collected frames the pre-trend tests fit, with the reference months as `pre` and the
    pre-index months as `post`: person-months of the panel, the justice person-months, and the
    offences and cases (the same people and rules as the estimates)."""
    t = tables.transform(with_period(BASELINE_MONTHS, a.pre_months))
    in_periods = F.col("in_outcomes") & F.col("period").isNotNull()
    months = collected(
        t.panel.filter(in_periods)
        .transform(effects.did_columns)
        .withColumn("months", F.lit(1))
        .transform(effects.with_person_number)
        .select("person", "evaluation", "post", "rel_month", "months", *effects.PANEL_SUMS)
    )
    justice_rows = collected(
        t.panel.transform(effects.justice_month_rows(list(effects.JUSTICE_COUNT_ESTIMANDS.values())))
    )
    offences, cases = effects.justice_frames(t.offences, t.cases, a.justice_spec)
    sentenced = offences[offences["sentenced"]]
    return {
        "months": with_level(months),
        "justice_months": with_level(justice_rows),
        "sentenced": with_level(sentenced.assign(custodial=sentenced["custodial"].astype(int))),
        "custodial": with_level(offences[offences["sentenced"] & offences["custodial"]]),
        "cases": with_level(cases),
        "windowed": with_level(cases[cases["hearings_observed"]].assign(one=1)),
    }


def pre_trends(frames: dict[str, pd.DataFrame], a: AnalysisConf) -> list[Estimate]:
    """One pre-trend test per rate-ratio and justice estimand (pre_trend_frames)."""
    tests = [
        estimators.pre_trend(name, frames["months"], column, "poisson", exposure="months")
        for name, column in effects.COUNT_ESTIMANDS.items()
    ]
    tests += [
        estimators.pre_trend(name, frames["justice_months"], column, "poisson", exposure="at_risk")
        for name, column in effects.JUSTICE_COUNT_ESTIMANDS.items()
    ]
    for name, (frame, column, family) in JUSTICE_PRE_TRENDS.items():
        tests.append(
            estimators.pre_trend(
                name,
                frames[frame],
                column,
                family,
                exposure="one" if family == "poisson" else None,
                event=EVENTS_OF.get(name),
                tau=a.restricted_mean_days,
            )
        )
    return tests


def suite(
    tables: Tables, a: AnalysisConf, costs: EconomicsConf, workers: int = 1, main: list[Estimate] | None = None
) -> list[dict]:
    """Every analysis that needs no re-linkage (in specifications' order), and the pre-trend rows.

    Each analysis is a few Spark jobs that collect its frames, then numpy and statsmodels fits
    on the driver: `workers` analyses run side by side in threads, so that one's fits overlap
    another's Spark jobs and a second core fits too. The rows are the same in any case.
    main: the effect stage's own estimates of these tables (effects.fitted), if it made them:
    the main analysis is those, not fitted a second time."""

    def one(analysis: str) -> list[dict]:
        if analysis == PRE_TREND:
            return rows(PRE_TREND, pre_trends(pre_trend_frames(tables, a), a))
        if analysis == MAIN and main is not None:
            return rows(MAIN, main)
        return estimated(tables, a, costs, analysis)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [row for part in pool.map(one, [*specifications(a), PRE_TREND]) for row in part]


def in_order(rows: list[dict]) -> list[dict]:
    """Rows by analysis (the contract's order: main, the transforms, the linkage thresholds by
    threshold, pre_trend last), then by estimand in the results table's order."""
    first = list(TRANSFORMS)

    def key(row: dict) -> tuple:
        analysis = row["analysis"]
        if analysis in first:
            rank = (first.index(analysis), 0.0)
        elif analysis == PRE_TREND:
            rank = (len(first) + 1, 0.0)
        else:
            rank = (len(first), float(analysis.rsplit("_", 1)[1]))
        return (*rank, ESTIMANDS.index(row["estimand"]))

    return sorted(rows, key=key)
