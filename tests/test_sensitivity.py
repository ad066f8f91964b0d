"""Sensitivity analyses: the transforms that define them, and the pre-trend test's power."""

from __future__ import annotations

import numpy as np
import pandas as pd
from chispa import assert_df_equality

from ld_spark import sensitivity
from ld_spark.estimators import pre_trend

PANEL = "person_key string, cohort string, in_outcomes boolean, rel_month int, period string"


def _panel(spark, rows):
    return spark.createDataFrame(rows, PANEL)


def test_placebo_moves_every_index_twelve_months_earlier(spark, config):
    a = config.analysis
    panel = _panel(
        spark,
        [
            ("p", "evaluation", True, -24, None),
            ("p", "evaluation", True, -13, None),
            ("p", "evaluation", True, -12, "pre"),
        ]
        + [
            ("p", "evaluation", True, -1, "pre"),
            ("p", "evaluation", True, 0, "post"),
            ("p", "evaluation", True, 11, "post"),
        ],
    )
    tables = sensitivity.Tables(panel, panel, panel)
    placebo = sensitivity.specifications(a)[sensitivity.PLACEBO](tables).panel
    expected = _panel(
        spark,
        [
            ("p", "evaluation", True, -12, "pre"),
            ("p", "evaluation", True, -1, "pre"),
            ("p", "evaluation", True, 0, "post"),
        ]
        + [
            ("p", "evaluation", True, 11, "post"),
            ("p", "evaluation", True, 12, None),
            ("p", "evaluation", True, 23, None),
        ],
    )
    assert_df_equality(placebo, expected, ignore_row_order=True, ignore_nullable=True)


def test_baseline_takes_months_minus_24_to_minus_13_as_the_pre_period(spark, config):
    panel = _panel(
        spark,
        [("p", "historic", True, -24, None), ("p", "historic", True, -13, None), ("p", "historic", True, -12, "pre")]
        + [("p", "historic", True, 0, "post")],
    )
    baseline = sensitivity.specifications(config.analysis)[sensitivity.BASELINE](
        sensitivity.Tables(panel, panel, panel)
    )
    periods = {r["rel_month"]: r["period"] for r in baseline.offences.collect()}
    assert periods == {-24: "pre", -13: "pre", -12: None, 0: "post"}


def test_overlap_keeps_people_in_both_cohorts_and_itt_keeps_those_who_declined(spark, config):
    panel = _panel(
        spark,
        [
            ("both", "evaluation", True, 0, "post"),
            ("both", "historic", True, 0, "post"),
            ("declined", "evaluation", False, 0, "post"),
            ("only", "historic", True, 0, "post"),
        ],
    )
    specs = sensitivity.specifications(config.analysis)
    overlap = specs[sensitivity.OVERLAP_ONLY](sensitivity.Tables(panel, panel, panel))
    assert sorted(r["cohort"] for r in overlap.cases.collect() if r["person_key"] == "both") == [
        "evaluation",
        "historic",
    ]
    assert {r["person_key"] for r in overlap.panel.collect()} == {"both"}
    itt = specs[sensitivity.INTENTION_TO_TREAT](sensitivity.Tables(panel, panel, panel))
    assert all(r["in_outcomes"] for r in itt.panel.collect())


def _monthly_counts(seed: int, evaluation_ramp: float) -> pd.DataFrame:
    """Person-months of two cohorts of 1,500 people: the reference months, then months -12..-1
    where the evaluation cohort's rate rises by `evaluation_ramp` x (month + 13) / 12 over the
    control's (0: parallel trends)."""
    rng = np.random.default_rng(seed)
    evaluation, person, month = (
        a.ravel() for a in np.meshgrid([0, 1], np.arange(1500), np.arange(-24, 0), indexing="ij")
    )
    post = (month >= -12).astype(int)
    rate = 0.2 * np.where(evaluation == 1, 1.5, 1.0) * (1 + evaluation_ramp * evaluation * post * (month + 13) / 12)
    df = pd.DataFrame(
        {
            "person": evaluation * 10_000 + person,
            "evaluation": evaluation,
            "rel_month": month,
            "post": post,
            "events": rng.poisson(rate),
            "months": 1,
        }
    )
    return sensitivity.with_level(df)


def test_pre_trend_detects_a_planted_diverging_trend_and_passes_parallel_ones():
    parallel = pre_trend("x_rr", _monthly_counts(1, 0.0), "events", "poisson", exposure="months")
    diverging = pre_trend("x_rr", _monthly_counts(1, 0.6), "events", "poisson", exposure="months")
    assert parallel.p_value > 0.05 and diverging.p_value < 0.001
    assert "12 degrees of freedom" in parallel.method and diverging.estimate > 3 * parallel.estimate


def test_a_poisson_pre_trend_started_at_its_cells_optimum_is_statsmodels_own_fit(monkeypatch):
    from ld_spark import estimators

    df = _monthly_counts(4, 0.3)
    started = pre_trend("x_rr", df, "events", "poisson", exposure="months")
    monkeypatch.setattr(estimators, "cells_optimum", lambda *args: None)  # IRLS from statsmodels' own start
    plain = pre_trend("x_rr", df, "events", "poisson", exposure="months")
    assert started.method == plain.method
    np.testing.assert_allclose([started.estimate, started.p_value], [plain.estimate, plain.p_value], rtol=1e-8)


def test_pre_trend_leaves_out_months_a_cohort_cannot_fit_and_refuses_an_empty_reference():
    df = _monthly_counts(2, 0.0)
    quiet = (df["level"] == "-5") & (df["evaluation"] == 0)
    tested = pre_trend("x_rr", df.assign(events=df["events"].where(~quiet, 0)), "events", "poisson", exposure="months")
    assert "11 degrees of freedom (11 of the pre-index months fitted)" in tested.method
    no_reference = df.assign(events=df["events"].where(df["level"] != "ref", 0))
    assert pre_trend("x_rr", no_reference, "events", "poisson", exposure="months").estimate is None


def test_pre_trend_of_a_binary_outcome():
    rng = np.random.default_rng(3)
    n = 6000
    df = pd.DataFrame(
        {
            "person": np.arange(n),
            "evaluation": rng.integers(0, 2, n),
            "rel_month": rng.integers(-24, 0, n),
        }
    ).assign(post=lambda d: (d["rel_month"] >= -12).astype(int))
    base = 0.3 + 0.1 * df["evaluation"]
    diverging = base + 0.25 * df["evaluation"] * df["post"] * (df["rel_month"] + 13) / 12
    flat = sensitivity.with_level(df.assign(y=(rng.random(n) < base).astype(int)))
    steep = sensitivity.with_level(df.assign(y=(rng.random(n) < diverging).astype(int)))
    assert pre_trend("c_or", flat, "y", "binomial").p_value > 0.05
    assert pre_trend("c_or", steep, "y", "binomial").p_value < 0.001


def test_the_suite_takes_the_main_analysis_from_the_effects_stage_and_fits_every_other(monkeypatch, config):
    """Given the effects stage's estimates, the suite releases them as `main` and fits only the
    other specifications (one fit of the same tables fewer); without them it fits main too."""
    from ld_spark.estimators import Estimate

    fitted_for: list[str] = []

    def estimated(tables, a, costs, analysis):
        fitted_for.append(analysis)
        return [{"analysis": analysis, "estimand": "ae_attendance_rr", "estimate": 2.0}]

    monkeypatch.setattr(sensitivity, "estimated", estimated)
    monkeypatch.setattr(sensitivity, "pre_trend_frames", lambda tables, a: {})
    monkeypatch.setattr(sensitivity, "pre_trends", lambda frames, a: [])
    main = [Estimate("ae_attendance_rr", 1.25, 1.0, 1.5, 0.04, 300, "poisson", people=120)]
    tables = sensitivity.Tables(None, None, None)

    rows = sensitivity.suite(tables, config.analysis, config.economics, workers=2, main=main)

    assert sorted(fitted_for) == sorted(a for a in sensitivity.TRANSFORMS if a != sensitivity.MAIN)
    (main_row,) = [r for r in rows if r["analysis"] == sensitivity.MAIN]
    assert (main_row["estimate"], main_row["ci_low"], main_row["people"]) == (1.25, 1.0, 120)
    fitted_for.clear()
    rows = sensitivity.suite(tables, config.analysis, config.economics, workers=2)
    assert sorted(fitted_for) == sorted(sensitivity.TRANSFORMS)
    assert [r["estimate"] for r in rows if r["analysis"] == sensitivity.MAIN] == [2.0]


def test_an_older_out_dirs_estimates_table_moves_out_from_around_the_analyses_own_tables(spark, tmp_path):
    """Runs before the move wrote the estimates table at analysis/sensitivity, the folder of the
    analyses' own tables. VACUUM of it deleted those tables' files (every file in its folder its
    own versions do not name). A run copies it to catalog.SENSITIVITY and deletes it: both read
    as before, and stay readable after every table is vacuumed."""
    from ld_spark import catalog, erase

    out = tmp_path / "out"
    legacy = out / "analysis" / "sensitivity"
    inner = legacy / "match_threshold_0.80" / "panel"
    spark.createDataFrame([("main", 1.0)], "analysis string, estimate double").write.format("delta").save(str(legacy))
    spark.createDataFrame([("main", 2.0)], "analysis string, estimate double").write.format("delta").mode(
        "overwrite"
    ).save(str(legacy))
    spark.createDataFrame([("k1", 3)], "person_key string, n int").write.format("delta").save(str(inner))

    moved = catalog.path(out, catalog.SENSITIVITY)
    (moved / "_delta_log").mkdir(parents=True)  # a run stopped before its first commit there
    assert catalog.unnested(spark, out)
    assert not (legacy / "_delta_log").exists() and not [p for p in legacy.iterdir() if p.is_file()]
    assert sorted(p.name for p in legacy.iterdir()) == ["match_threshold_0.80"]
    with erase._vacuum_settings(spark):
        for table in (moved, inner):
            erase._vacuumed(spark, table, str(table))
    assert [tuple(r) for r in spark.read.format("delta").load(str(moved)).collect()] == [("main", 2.0)]
    assert [tuple(r) for r in spark.read.format("delta").load(str(inner)).collect()] == [("k1", 3)]
    assert not catalog.unnested(spark, out)  # nothing left to move

    # The earlier code run again since (or a stop after the copy): its table goes, the rest stay.
    spark.createDataFrame([("main", 9.0)], "analysis string, estimate double").write.format("delta").save(str(legacy))
    assert not catalog.unnested(spark, out)
    assert sorted(p.name for p in legacy.iterdir()) == ["match_threshold_0.80"]
    assert [tuple(r) for r in spark.read.format("delta").load(str(moved)).collect()] == [("main", 2.0)]
    assert [tuple(r) for r in spark.read.format("delta").load(str(inner)).collect()] == [("k1", 3)]

    # A stop after the old log was deleted, before its files were: they go too.
    (legacy / "part-00000-left.parquet").write_bytes(next(moved.glob("part-*.parquet")).read_bytes())
    assert not catalog.unnested(spark, out)
    assert sorted(p.name for p in legacy.iterdir()) == ["match_threshold_0.80"]
