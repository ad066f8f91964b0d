"""`ld-spark run`: every stage that exists, raw extracts to results, tracked in MLflow."""
from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import time
from pathlib import Path

from pyspark.sql import SparkSession

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark import (bronze, cohorts, descriptives, economics, effects, estimators, events, io, justice, linkage,
                      report, series, tracking, uptake)
from ld_spark.config import AnalysisConf, Config
from ld_spark.contract import ESTIMANDS, RESULT_COLUMNS, TABLES

STATES = (bronze.LOADED, bronze.QUARANTINED, bronze.DUPLICATE, bronze.SUPERSEDED)


def landing_path(out: str | Path, table: str) -> Path:
    """Landing copies hold identifiers, so they live in the linkage layer."""
    return linkage_path(out, "landing", table)


def linkage_path(out: str | Path, *parts: str) -> Path:
    return Path(out).joinpath("linkage", *[p.replace("/", "__") for p in parts])


def analysis_path(out: str | Path, table: str) -> Path:
    """The analysis layer: person_key, year of birth, sex and events; no direct identifier."""
    return Path(out) / "analysis" / table


def state_counts(classified: DataFrame) -> dict[str, int]:
    """Rows per bronze state, plus `read`: what the reconciliation reports."""
    counts = {r[bronze.STATUS]: r["count"] for r in classified.groupBy(bronze.STATUS).count().collect()}
    out = {state: int(counts.get(state, 0)) for state in STATES}
    return {"read": sum(out.values()), **out}


def run_bronze(spark: SparkSession, out: Path, run_id: str) -> dict[str, dict[str, int]]:
    """Landing -> typed bronze tables and one quarantine table; returns the reconciliation."""
    reconciled, quarantine_parts, cached = {}, [], []
    for table in TABLES:
        landed = io.read_delta(spark, landing_path(out, table))
        classified = landed.transform(bronze.classify(table)).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(classified)
        io.write_delta(classified.transform(bronze.typed(table)), linkage_path(out, "bronze", table))
        quarantine_parts.append(classified.transform(bronze.quarantined(table, run_id)))
        reconciled[table] = state_counts(classified)
    quarantine = quarantine_parts[0]
    for part in quarantine_parts[1:]:
        quarantine = quarantine.unionByName(part)
    io.write_delta(quarantine, linkage_path(out, "quarantine"), partition_by=["source_table"])
    for df in cached:
        df.unpersist()
    return reconciled


def run_linkage(spark: SparkSession, config: Config, raw: Path, out: Path) -> tuple[DataFrame | None, str]:
    """Bronze identity tables -> linkage/record_person (source_table, record_key, person_key).

    Returns the linkage quality (None without _truth) and the Splink model JSON.
    """
    key = linkage.load_key(config.linkage)
    records = None
    for source, (table, _, _) in linkage.SOURCES.items():
        part = io.read_delta(spark, linkage_path(out, "bronze", table)).transform(linkage.identity_records(source))
        records = part if records is None else records.unionByName(part)
    records = records.transform(linkage.with_tuple_id).persist(StorageLevel.MEMORY_AND_DISK)
    tuples = linkage.identity_tuples(records).persist(StorageLevel.MEMORY_AND_DISK)
    work = linkage_path(out, "_splink_work")
    work.mkdir(parents=True, exist_ok=True)
    model_in = Path(config.linkage.model_in) if config.linkage.model_in else None
    pairs, model = linkage.train_and_predict(spark, tuples, config.linkage, work, model_in=model_in)
    edges = linkage.deterministic_edges(tuples).unionByName(pairs.select("id_l", "id_r"))
    components = linkage.connected_components(tuples.select(linkage.UNIQUE_ID), edges)
    people = components.transform(linkage.with_person_key(key))
    record_person = (records.join(people, on=linkage.UNIQUE_ID, how="inner")
                     .select("source_table", "record_key", "person_key"))
    io.write_delta(record_person, linkage_path(out, "record_person_identity"))
    linked = io.read_delta(spark, linkage_path(out, "record_person_identity"))
    # Event tables reach their person through their parent record (parents listed first).
    everything = linked
    for table in linkage.EVENT_PARENTS:
        events = io.read_delta(spark, linkage_path(out, "bronze", table))
        everything = everything.unionByName(events.transform(linkage.event_record_person(table, everything)))
    io.write_delta(everything, linkage_path(out, "record_person"))
    io.write_delta(linkage.person_attributes(records, linked), analysis_path(out, "persons"))
    records.unpersist()
    tuples.unpersist()
    shutil.rmtree(work, ignore_errors=True)
    (linkage_path(out, "model")).mkdir(parents=True, exist_ok=True)
    (linkage_path(out, "model") / "splink_model.json").write_text(model)

    truth_file = raw / "_truth" / "record_person.csv"
    if not truth_file.exists():
        return None, model
    truth = spark.read.csv(str(truth_file), header=True)
    return linkage.pairwise_quality(linked, truth), model


def write_linkage_quality(spark: SparkSession, out: Path, quality: DataFrame | None, path: Path) -> None:
    """results/linkage_quality.csv (contract section 6); precision/recall/F1 blank without truth."""
    if quality is not None:
        rows = {r["source_table"]: r.asDict() for r in quality.collect()}
    else:
        linked = io.read_delta(spark, linkage_path(out, "record_person"))
        rows = {r["source_table"]: {**r.asDict(), "precision": None, "recall": None, "f1": None}
                for r in linked.groupBy("source_table").agg(F.count("*").alias("n_records"),
                                                            F.countDistinct("person_key").alias("n_persons")).collect()}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source_table", "n_records", "n_persons", "precision", "recall", "f1"])
        for source in linkage.SOURCES:
            r = rows.get(source, {"n_records": 0, "n_persons": 0, "precision": None, "recall": None, "f1": None})
            writer.writerow([source, r["n_records"], r["n_persons"],
                             *["" if r[m] is None else f"{r[m]:.4f}" for m in ("precision", "recall", "f1")]])


def follow_up_end(spark: SparkSession, analysis: AnalysisConf, out: Path) -> dt.date:
    """The last day the extracts cover: from conf, else the latest A&E arrival not after today."""
    if analysis.follow_up_end:
        return dt.date.fromisoformat(analysis.follow_up_end)
    hes = io.read_delta(spark, linkage_path(out, "bronze", "hes_ae"))
    latest = hes.filter(F.col("ARRIVALDATE") <= F.current_date()).agg(F.max("ARRIVALDATE")).first()[0]
    return latest or dt.date.today()


def write_rows(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return path


def run_series(spark: SparkSession, config: Config, out: Path, results: Path) -> dict:
    """Linked bronze tables -> cohorts, events, the person-month panel, offence and court tables
    (analysis layer), Figure 1 and the descriptive estimates (results/)."""
    a = config.analysis
    window = tuple(dt.date.fromisoformat(d) for d in a.evaluation_window)
    historic_window = tuple(dt.date.fromisoformat(d) for d in a.historic_charge_window)
    end = follow_up_end(spark, a, out)

    def bronze_table(table: str) -> DataFrame:
        return io.read_delta(spark, linkage_path(out, "bronze", table))

    def written(df: DataFrame, table: str, layer: str = "analysis") -> DataFrame:
        path = analysis_path(out, table) if layer == "analysis" else linkage_path(out, table)
        io.write_delta(df, path)
        return io.read_delta(spark, path)

    # Exact dates (referral, index) stay in the linkage layer; the analysis layer gets months.
    record_person = io.read_delta(spark, linkage_path(out, "record_person"))
    referrals = written(bronze_table("ld_referrals").transform(cohorts.referrals(record_person)), "referrals",
                        layer="linkage")
    evaluation = referrals.transform(cohorts.evaluation_cohort(window, end, a.min_follow_up_months))
    offences = (bronze_table("pnc/offences").withColumn("record_key", F.col("offence_id"))
                .transform(events.with_person("pnc/offences", record_person, evaluation))
                .persist(StorageLevel.MEMORY_AND_DISK))
    historic = evaluation.transform(cohorts.historic_control(historic_window, offences))
    both = written(cohorts.cohorts(evaluation, historic, a.declined_in_outcomes), "cohort_index", layer="linkage")
    written(both.transform(cohorts.dates_as_months), "cohorts")

    dated = events.cohort_events(bronze_table, record_person, both)
    monthly = written(dated.transform(series.monthly_events(both, *a.series_months)), "events")
    index = both.select("person_key", "cohort", "in_outcomes")
    panel = written(series.month_panel(index, monthly, events.PANEL_OUTCOMES, *a.series_months)
                    .transform(series.with_period(a.pre_months, a.post_months)), "panel")

    written(offences.transform(justice.cohort_offences(both, a.series_months, a.pre_months, a.post_months)),
            "offences")
    cases = (bronze_table("hmcts/cases").withColumn("record_key", F.col("case_id"))
             .transform(events.with_person("hmcts/cases", record_person, both)))
    hearings = justice.hearing_counts(bronze_table("hmcts/hearings"))
    written(cases.transform(justice.cohort_cases(both, hearings, justice.arrest_dates(offences),
                                                 a.series_months, a.pre_months, a.post_months)), "court_cases")
    offences.unpersist()

    rates = [r.asDict() for r in panel.filter("in_outcomes")
             .transform(series.monthly_rates(list(events.OUTCOMES))).collect()]
    rates.sort(key=lambda r: (r["outcome"], r["cohort"], r["rel_month"]))
    write_rows(results / "figure1.csv", ["cohort", "rel_month", "outcome", "persons", "events", "rate"], rates)
    report.figure1(rates, results / "figure1.png")

    referred = written(referrals.transform(cohorts.referred_in_window(window)).transform(cohorts.dates_as_months),
                       "referred")
    estimates = descriptives.descriptive_estimates(both, referred, panel, a.prior_contact_months)
    write_rows(results / "descriptives.csv", RESULT_COLUMNS, estimates)
    profile = descriptives.vulnerability_profile(descriptives.vulnerability_counts(referred))
    write_rows(results / "vulnerability_profile.csv", ["vulnerability", "people", "referred", "pct"], profile)

    sites = [r.asDict() for r in uptake.site_onward_counts(referred).collect()]
    write_rows(results / "site_onward_referrals.csv", ["site_code", "referrals", *uptake.ONWARD], sites)
    report.funnel_plot(sites, "iapt", results / "site_funnel_iapt.png")
    declining = [r.asDict() for r in uptake.declined_by_vulnerability(referred).collect()]
    write_rows(results / "declined_by_vulnerability.csv",
               ["vulnerability", "people", "declined", "people_without", "declined_without"], declining)
    report.declined_chart(declining, results / "declined_by_vulnerability.png")
    return {"follow_up_end": end, "estimates": estimates}


def run_effects(spark: SparkSession, config: Config, out: Path, results: Path, described: list[dict]) -> list[dict]:
    """Analysis tables -> every estimand of contract section 4: results/estimates.csv, the gold
    analysis/estimates Delta table, the forest plot and the event study."""
    a = config.analysis
    panel = io.read_delta(spark, analysis_path(out, "panel"))
    sums = panel.transform(effects.person_period_sums(list(effects.COUNT_ESTIMANDS.values()))).toPandas()
    offences, cases = effects.justice_frames(io.read_delta(spark, analysis_path(out, "offences")),
                                             io.read_delta(spark, analysis_path(out, "court_cases")))
    fitted = [*effects.count_estimates(sums), *effects.justice_estimates(offences, cases)]
    custody_or = next(e for e in fitted if e.estimand == "custody_or")
    inputs = effects.custody_inputs(offences, sums, custody_or)
    if inputs is not None:
        fitted += economics.economic_estimates(inputs, config.economics)

    by_name = {r["estimand"]: r for r in described} | {e.estimand: e.row() for e in fitted}
    rows = [by_name.get(name) or estimators.Estimate(name, None, None, None, None, 0, "not estimable on this input").row()
            for name in ESTIMANDS]
    write_rows(results / "estimates.csv", RESULT_COLUMNS, rows)
    gold = spark.createDataFrame([{k: (None if r[k] is None else float(r[k]) if k in ("estimate", "ci_low", "ci_high", "p_value") else r[k])
                                   for k in RESULT_COLUMNS} for r in rows],
                                 "estimand string, estimate double, ci_low double, ci_high double, p_value double, n long, method string")
    io.write_delta(gold, analysis_path(out, "estimates"))
    report.forest_plot(rows, results / "forest_plot.png")

    study_rows = panel.transform(effects.event_study_rows(effects.EVENT_STUDY_OUTCOMES, a.event_study_reference,
                                                          a.event_study_months)).toPandas()
    study = []
    for outcome in effects.EVENT_STUDY_OUTCOMES:
        fit = estimators.event_study(study_rows, outcome)
        study += [{"outcome": outcome, "rel_month": int(r["level"]), "rr": r["rr"], "ci_low": r["ci_low"],
                   "ci_high": r["ci_high"]} for r in fit.to_dict("records")]
    write_rows(results / "event_study.csv", ["outcome", "rel_month", "rr", "ci_low", "ci_high"], study)
    report.event_study_chart(study, results / "event_study.png")
    return rows


def run(spark: SparkSession, config: Config, raw: str, out: str) -> int:
    import mlflow

    # Structural checks on every table first: a run that cannot finish writes nothing.
    layouts = {table: io.check_columns(spark, raw, table) for table in TABLES}
    out_path = Path(out)
    results = out_path / "results"
    generator_info = Path(raw) / "_truth" / "generator.json"
    with tracking.run(config, run_name="ld-spark run") as active:
        if generator_info.exists():
            info = json.loads(generator_info.read_text())
            mlflow.log_params({"synthetic.scale": info["scale"], "synthetic.seed": info["seed"]})
        started = time.time()
        counts = {}
        for table, (kind, groups) in layouts.items():
            path = landing_path(out_path, table)
            io.write_delta(io.read_raw(spark, table, kind, groups), path)
            counts[table] = io.read_delta(spark, path).count()
            mlflow.log_param(f"delta_version.landing.{table.replace('/', '.')}", io.delta_version(spark, path))
        mlflow.log_metric("stage_seconds.landing", time.time() - started)

        started = time.time()
        run_id = active.info.run_id
        reconciled = run_bronze(spark, out_path, run_id)
        mlflow.log_metric("stage_seconds.bronze", time.time() - started)
        for table, states in reconciled.items():
            for state, n in states.items():
                mlflow.log_metric(f"rows_{state}.{table.replace('/', '.')}", n)

        started = time.time()
        quality, model = run_linkage(spark, config, Path(raw), out_path)
        mlflow.log_metric("stage_seconds.linkage", time.time() - started)
        mlflow.log_text(model, "linkage/splink_model.json")
        results.mkdir(parents=True, exist_ok=True)
        mlflow.log_artifact(str(report.match_weights_chart(model, results / "match_weights.png")), artifact_path="linkage")

        results.mkdir(parents=True, exist_ok=True)
        write_linkage_quality(spark, out_path, quality, results / "linkage_quality.csv")
        mlflow.log_artifact(str(results / "linkage_quality.csv"), artifact_path="results")
        with (results / "linkage_quality.csv").open() as handle:
            for row in csv.DictReader(handle):
                for metric in ("n_records", "n_persons", "precision", "recall", "f1"):
                    if row[metric]:
                        mlflow.log_metric(f"linkage.{metric}.{row['source_table']}", float(row[metric]))

        with (results / "reconciliation.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["source_table", "read", *STATES])
            for table, states in reconciled.items():
                writer.writerow([table, states["read"], *[states[s] for s in STATES]])
        mlflow.log_artifact(str(results / "reconciliation.csv"), artifact_path="results")

        started = time.time()
        analysed = run_series(spark, config, out_path, results)
        mlflow.log_metric("stage_seconds.series", time.time() - started)
        mlflow.log_param("analysis.follow_up_end_used", analysed["follow_up_end"].isoformat())
        started = time.time()
        estimated = run_effects(spark, config, out_path, results, analysed["estimates"])
        mlflow.log_metric("stage_seconds.effects", time.time() - started)
        for row in estimated:
            for field in ("estimate", "ci_low", "ci_high", "p_value"):
                if row[field] is not None:
                    mlflow.log_metric(f"{row['estimand']}.{field}", float(row[field]))
        for name in ("estimates.csv", "forest_plot.png", "event_study.csv", "event_study.png", "figure1.png",
                     "figure1.csv", "descriptives.csv", "vulnerability_profile.csv", "site_onward_referrals.csv",
                     "site_funnel_iapt.png", "declined_by_vulnerability.csv", "declined_by_vulnerability.png"):
            mlflow.log_artifact(str(results / name), artifact_path="results")

    loaded = sum(s[bronze.LOADED] for s in reconciled.values())
    quarantined = sum(s[bronze.QUARANTINED] for s in reconciled.values())
    print(f"read {sum(counts.values()):,d} rows from {len(counts)} tables: {loaded:,d} loaded into bronze Delta "
          f"tables, {quarantined:,d} quarantined with their reason, under {out_path / 'linkage'}")
    print(f"results: {results}")
    print(f"MLflow run {run_id} in {config.mlflow.tracking_uri} "
          f"(browse: .venv/bin/mlflow ui --backend-store-uri {config.mlflow.tracking_uri})")
    return 0
