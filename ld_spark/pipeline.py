"""`ld-spark run`: every stage that exists, raw extracts to results, tracked in MLflow."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from pyspark.sql import SparkSession

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark import (bronze, cohorts, descriptives, economics, effects, estimators, events, io, justice, linkage,
                      report, sdc, series, tracking, uptake)
from ld_spark.config import AnalysisConf, Config
from ld_spark.contract import ESTIMANDS, RESULT_COLUMNS, TABLES
from ld_spark.publish import MANIFEST, Publisher, write_csv, write_text

STATES = bronze.STATES
T = TypeVar("T")


def per_table(work: Callable[[str], T], tables: list[str], threads: int) -> dict[str, T]:
    """{table: work(table)} for every table, `threads` tables at a time.

    A table's landing or bronze step is a few small Spark jobs and a Delta commit, mostly driver
    latency; Spark runs jobs from several driver threads side by side, so the cores stay busy.
    A failure is raised once every table has been tried (the others are not abandoned half-way).
    """
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return dict(zip(tables, pool.map(work, tables)))


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


def run_landing(spark: SparkSession, out: Path, layouts: dict, threads: int = 1) -> dict[str, int]:
    """Raw extracts -> landing Delta tables (every row as text, with its file and line).
    Returns each table's Delta version."""
    def land(table: str) -> int:
        kind, groups = layouts[table]
        path = landing_path(out, table)
        io.write_delta(io.read_raw(spark, table, kind, groups), path)
        return io.delta_version(path)

    return per_table(land, list(layouts), threads)


def run_bronze(spark: SparkSession, out: Path, run_id: str, threads: int = 1) -> dict[str, dict[str, int]]:
    """Landing -> typed bronze tables and one quarantine table; returns the reconciliation."""
    classified = {}

    def load(table: str) -> dict[str, int]:
        landed = io.read_delta(spark, landing_path(out, table))
        classified[table] = landed.transform(bronze.classify(table)).persist(StorageLevel.MEMORY_AND_DISK)
        io.write_delta(classified[table].transform(bronze.typed(table)), linkage_path(out, "bronze", table))
        return state_counts(classified[table])

    try:
        reconciled = per_table(load, list(TABLES), threads)
        parts = [classified[table].transform(bronze.quarantined(table, run_id)) for table in TABLES]
        quarantine = parts[0]
        for part in parts[1:]:
            quarantine = quarantine.unionByName(part)
        io.write_delta(quarantine, linkage_path(out, "quarantine"), partition_by=["source_table"])
    finally:
        for df in classified.values():
            df.unpersist()
    return reconciled


def identity_records(spark: SparkSession, out: Path) -> DataFrame:
    """Every identity source's bronze records in the common layout, each with its tuple id."""
    records = None
    for source, (table, _, _) in linkage.SOURCES.items():
        part = io.read_delta(spark, linkage_path(out, "bronze", table)).transform(linkage.identity_records(source))
        records = part if records is None else records.unionByName(part)
    return records.transform(linkage.with_tuple_id)


def run_linkage(spark: SparkSession, config: Config, raw: Path, out: Path) -> tuple[list[dict] | None, str]:
    """Bronze identity tables -> linkage/record_person (source_table, record_key, person_key).

    Returns the linkage quality rows against _truth (None without it) and the Splink model JSON.
    """
    key = linkage.load_key(config.linkage, linkage.key_path(config.linkage), spark.sparkContext.master)
    records = identity_records(spark, out).persist(StorageLevel.MEMORY_AND_DISK)
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
    write_text(linkage_path(out, "model") / "splink_model.json", model)

    truth_file = raw / "_truth" / "record_person.csv"
    if not truth_file.exists():
        return None, model
    truth = spark.read.csv(str(truth_file), header=True)
    cells = linkage.quality_cells(linked, truth).persist(StorageLevel.MEMORY_AND_DISK)
    quality = [r.asDict() for r in linkage.pairwise_quality(cells).collect()]
    cells.unpersist()
    return quality, model


LINKAGE_QUALITY_COLUMNS = ["source_table", "n_records", "n_persons", "precision", "recall", "f1"]


def linkage_quality_rows(spark: SparkSession, out: Path, quality: list[dict] | None) -> list[dict]:
    """The rows of results/linkage_quality.csv (contract section 6); precision/recall/F1 blank without truth."""
    if quality is not None:
        rows = {r["source_table"]: r for r in quality}
    else:
        linked = io.read_delta(spark, linkage_path(out, "record_person"))
        rows = {r["source_table"]: {**r.asDict(), "precision": None, "recall": None, "f1": None}
                for r in linked.groupBy("source_table").agg(F.count("*").alias("n_records"),
                                                            F.countDistinct("person_key").alias("n_persons")).collect()}
    out = []
    for source in linkage.SOURCES:
        r = rows.get(source, {"n_records": 0, "n_persons": 0, "precision": None, "recall": None, "f1": None})
        out.append({"source_table": source, "n_records": r["n_records"], "n_persons": r["n_persons"],
                    **{m: None if r[m] is None else round(r[m], 4) for m in ("precision", "recall", "f1")}})
    return out


# The dense date of each source that says how far it reaches (L&D referrals only cover their
# own windows, so they do not say where the follow-up ends).
EXTRACT_DATES = {
    "hes_ae": "ARRIVALDATE",
    "mhsds/mhs201_care_contact": "CareContDate",
    "iapt/ids201_care_contact": "CareContDate",
    "ndtms/episodes": "REFLD",
    "pnc/offences": "arrest_date",
    "hmcts/hearings": "hearing_date",
}


def follow_up_end(spark: SparkSession, analysis: AnalysisConf, out: Path) -> dt.date:
    """The extract's end: from conf, else the latest date every source covers.

    Each source's latest date (none after today: a mistyped future date says nothing), then the
    earliest of those, so no source's follow-up is counted past the day it was cut. A source
    with no dated rows does not vote.
    """
    if analysis.follow_up_end:
        return dt.date.fromisoformat(analysis.follow_up_end)
    latest = []
    for table, column in EXTRACT_DATES.items():
        df = io.read_delta(spark, linkage_path(out, "bronze", table))
        value = df.filter(F.col(column) <= F.current_date()).agg(F.max(column)).first()[0]
        if value is not None:
            latest.append(value)
    return min(latest) if latest else dt.date.today()


def run_series(spark: SparkSession, config: Config, out: Path, publisher: Publisher) -> dict:
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
    both = written(cohorts.cohorts(evaluation, historic, a.declined_in_outcomes)
                   .transform(justice.with_justice_follow_up(end, a.post_months, a.waiting_months)),
                   "cohort_index", layer="linkage")
    written(both.transform(cohorts.dates_as_months), "cohorts")

    # Justice: every PNC record of the cohorts classified under the proven-reoffending rules.
    index_ids = offences.transform(justice.index_offences(both, a.index_offence_tolerance_days)).persist()
    classified = written(offences.transform(justice.cohort_offences(
        both, index_ids, a.series_months, a.pre_months, a.post_months, a.waiting_months)), "offences")
    cases = (bronze_table("hmcts/cases").withColumn("record_key", F.col("case_id"))
             .transform(events.with_person("hmcts/cases", record_person, both)))
    hearings = justice.hearing_counts(bronze_table("hmcts/hearings"), cases, a.restricted_mean_days)
    written(cases.transform(justice.cohort_cases(both, index_ids, hearings, justice.arrest_dates(offences), end,
                                                 a.series_months, a.pre_months, a.post_months,
                                                 a.restricted_mean_days)), "court_cases")
    at_risk = offences.transform(justice.months_at_risk(both, end, config.economics.share_of_sentence_served,
                                                        a.series_months, {cohorts.HISTORIC: historic_window[0]}))

    dated = events.cohort_events(bronze_table, record_person, both)
    monthly = written(dated.transform(series.monthly_events(both, *a.series_months))
                      .unionByName(justice.offence_events(classified)), "events")
    index = both.select("person_key", "cohort", "in_outcomes", "justice_followed")
    panel = written(series.month_panel(index, monthly, events.PANEL_OUTCOMES, *a.series_months)
                    .join(at_risk, on=["person_key", "cohort", "rel_month"], how="left")
                    .transform(series.with_period(a.pre_months, a.post_months)), "panel")
    index_ids.unpersist()
    offences.unpersist()

    rates = [r.asDict() for r in panel.filter("in_outcomes")
             .transform(series.monthly_rates(events.SERIES_OUTCOMES)).collect()]
    rates.sort(key=lambda r: (r["outcome"], r["cohort"], r["rel_month"]))
    released = publisher.table("figure1.csv", ["cohort", "rel_month", "outcome", "persons", "events", "rate"], rates)
    report.figure1(released, publisher.path("figure1.png"))

    referred = written(referrals.transform(cohorts.referred_in_window(window)).transform(cohorts.dates_as_months),
                       "referred")
    estimates = descriptives.descriptive_estimates(both, referred, panel, a.prior_contact_months)
    described = publisher.estimates("descriptives.csv", estimates)
    profile = descriptives.vulnerability_profile(descriptives.vulnerability_counts(referred))
    publisher.table("vulnerability_profile.csv", ["vulnerability", "people", "referred", "pct"], profile)

    sites = [r.asDict() for r in uptake.site_onward_counts(referred).collect()]
    sites = publisher.table("site_onward_referrals.csv", ["site_code", "referrals", *uptake.ONWARD], sites)
    report.funnel_plot(sites, "iapt", publisher.path("site_funnel_iapt.png"))
    declining = [r.asDict() for r in uptake.declined_by_vulnerability(referred).collect()]
    declining = publisher.table("declined_by_vulnerability.csv",
                                ["vulnerability", "people", "declined", "people_without", "declined_without"], declining)
    report.declined_chart(declining, publisher.path("declined_by_vulnerability.png"))
    not_followed = {r["estimand"]: r["estimate"] for r in described
                    if r["estimand"].startswith("n_justice_not_followed_")}
    return {"follow_up_end": end, "estimates": estimates, "not_followed": not_followed}


def run_effects(spark: SparkSession, config: Config, out: Path, publisher: Publisher, described: list[dict]) -> list[dict]:
    """Analysis tables -> every estimand of contract section 4: the gold analysis/estimates Delta
    table (exact), results/estimates.csv (released), the forest plot and the event study.
    Returns the released rows."""
    a = config.analysis
    panel = io.read_delta(spark, analysis_path(out, "panel"))
    sums = effects.collected(panel.transform(effects.person_period_sums(effects.PANEL_SUMS)))
    offences, cases = effects.justice_frames(io.read_delta(spark, analysis_path(out, "offences")),
                                             io.read_delta(spark, analysis_path(out, "court_cases")),
                                             a.justice_spec)
    if a.justice_spec == "plain":
        # For comparison only (benchmarks/coverage.py): what the job reported before the rules.
        fitted = [*effects.count_estimates(sums), *effects.plain_justice_estimates(offences, cases, sums)]
        offences = offences.assign(sentenced=offences["convicted"], custodial=offences["custodial_code"])
    else:
        justice_rows = effects.collected(
            panel.transform(effects.justice_month_rows(list(effects.JUSTICE_COUNT_ESTIMANDS.values()))))
        fitted = [*effects.count_estimates(sums), *effects.justice_count_estimates(justice_rows),
                  *effects.justice_estimates(offences, cases, a.restricted_mean_days)]
    custody_or = next(e for e in fitted if e.estimand == "custody_or")
    inputs = effects.custody_inputs(offences, sums, custody_or)
    if inputs is not None:
        fitted += economics.economic_estimates(inputs, config.economics)

    by_name = {r["estimand"]: r for r in described} | {e.estimand: e.row() for e in fitted}
    rows = [by_name.get(name) or estimators.Estimate(name, None, None, None, None, 0, "not estimable on this input").row()
            for name in ESTIMANDS]
    gold = spark.createDataFrame([{k: (None if r[k] is None else float(r[k]) if k in ("estimate", "ci_low", "ci_high", "p_value") else r[k])
                                   for k in RESULT_COLUMNS} for r in rows],
                                 "estimand string, estimate double, ci_low double, ci_high double, p_value double, n long, method string")
    io.write_delta(gold, analysis_path(out, "estimates"))
    derived = [name for name in ESTIMANDS if name.startswith("savings_")]
    released = publisher.estimates("estimates.csv", rows, derived={"custody_or": derived})
    report.forest_plot(released, publisher.path("forest_plot.png"))

    study_rows = effects.collected(panel.transform(effects.event_study_rows(
        effects.EVENT_STUDY_OUTCOMES, a.event_study_reference, a.event_study_months)))
    study = []
    for outcome in effects.EVENT_STUDY_OUTCOMES:
        fit = estimators.event_study(study_rows, outcome)
        study += [{"outcome": outcome, "rel_month": int(r["level"]), "rr": r["rr"], "ci_low": r["ci_low"],
                   "ci_high": r["ci_high"], "people": int(r["people"]), "df_resid": int(r["df_resid"]),
                   "smallest_cell": int(r["smallest_cell"])}
                  for r in fit.to_dict("records")]
    study.sort(key=lambda r: (effects.EVENT_STUDY_OUTCOMES.index(r["outcome"]), r["rel_month"]))
    study = publisher.event_study("event_study.csv", study)
    report.event_study_chart(study, publisher.path("event_study.png"))
    return released


def delta_versions(out: Path) -> dict[str, int]:
    """Every Delta table under OUT_DIR (by its path there) -> its latest committed version."""
    return {str(log.parent.relative_to(out)): io.delta_version(log.parent)
            for log in sorted(out.rglob("_delta_log")) if log.is_dir()}


def run(spark: SparkSession, config: Config, raw: str, out: str) -> int:
    # Structural checks on every table first: a run that cannot finish writes nothing.
    layouts = {table: io.check_columns(spark, raw, table) for table in TABLES}
    # One run at a time per output directory; a second one stops here with a one-line reason.
    with io.exclusive(out):
        return _run(spark, config, raw, Path(out), layouts)


def _run(spark: SparkSession, config: Config, raw: str, out_path: Path, layouts: dict) -> int:
    import mlflow

    publisher = Publisher(out_path / "results", sdc.Rules(**config.disclosure.model_dump()))
    generator_info = Path(raw) / "_truth" / "generator.json"
    with tracking.run(config, out_path, run_name="ld-spark run") as active:
        if generator_info.exists():
            info = json.loads(generator_info.read_text())
            mlflow.log_params({"synthetic.scale": info["scale"], "synthetic.seed": info["seed"]})
        threads = config.spark.concurrent_tables
        started = time.time()
        versions = run_landing(spark, out_path, layouts, threads)
        mlflow.log_params({f"delta_version.landing.{table.replace('/', '.')}": v for table, v in versions.items()})
        mlflow.log_metric("stage_seconds.landing", time.time() - started)

        started = time.time()
        run_id = active.info.run_id
        reconciled = run_bronze(spark, out_path, run_id, threads)
        # `read` is counted from the raw files apart from the parser: a row lost or invented
        # anywhere between the raw bytes and the bronze states stops the run here, loudly.
        read = per_table(lambda table: io.raw_record_count(spark, *layouts[table]), list(reconciled), threads)
        reconciled = {table: bronze.reconciled(table, read[table], states) for table, states in reconciled.items()}
        mlflow.log_metric("stage_seconds.bronze", time.time() - started)
        # The exact reconciliation stays inside (linkage/); results/ and MLflow get it released.
        reconciliation = [{"source_table": table, **states} for table, states in reconciled.items()]
        write_csv(linkage_path(out_path, "reconciliation.csv"), ["source_table", "read", *STATES], reconciliation)
        for row in publisher.table("reconciliation.csv", ["source_table", "read", *STATES], reconciliation):
            for state in ("read", *STATES):
                if row[state] is not None:
                    mlflow.log_metric(f"rows_{state}.{row['source_table'].replace('/', '.')}", row[state])

        started = time.time()
        quality, model = run_linkage(spark, config, Path(raw), out_path)
        mlflow.log_metric("stage_seconds.linkage", time.time() - started)
        mlflow.log_text(model, "linkage/splink_model.json")
        mlflow.log_artifact(str(report.match_weights_chart(model, publisher.path("match_weights.png"))),
                            artifact_path="linkage")
        quality_rows = publisher.table("linkage_quality.csv", LINKAGE_QUALITY_COLUMNS,
                                       linkage_quality_rows(spark, out_path, quality))
        for row in quality_rows:
            for metric in ("n_records", "n_persons", "precision", "recall", "f1"):
                if row[metric] is not None:
                    mlflow.log_metric(f"linkage.{metric}.{row['source_table']}", float(row[metric]))

        started = time.time()
        analysed = run_series(spark, config, out_path, publisher)
        mlflow.log_metric("stage_seconds.series", time.time() - started)
        mlflow.log_param("analysis.follow_up_end_used", analysed["follow_up_end"].isoformat())
        for name, value in analysed["not_followed"].items():
            if value is not None:
                mlflow.log_metric(name, float(value))
        # Released (rounded) counts only: these are people.
        print(f"extract end {analysed['follow_up_end'].isoformat()}: left out of the justice outcomes "
              f"(follow-up + waiting period past the end): "
              + ", ".join(f"{k.rsplit('_', 1)[1]} {v if v is not None else 'suppressed'}"
                          for k, v in analysed["not_followed"].items()))
        started = time.time()
        estimated = run_effects(spark, config, out_path, publisher, analysed["estimates"])
        mlflow.log_metric("stage_seconds.effects", time.time() - started)
        for row in estimated:
            for field in ("estimate", "ci_low", "ci_high", "p_value"):
                if row[field] is not None:
                    mlflow.log_metric(f"{row['estimand']}.{field}", float(row[field]))
        publisher.write_report()
        mlflow.log_metric("sdc.cells_ruled", len(publisher.report.rows))
        mlflow.log_metric("sdc.cells_suppressed_or_withheld",
                          sum(r["action"] in ("suppressed", "withheld") for r in publisher.report.rows))
        # results/ is replaced whole; MLflow gets exactly the files its manifest lists.
        manifest = publisher.commit(run_id, delta_versions(out_path))
        for name in [*manifest["files"], MANIFEST]:
            if name != "match_weights.png":
                mlflow.log_artifact(str(publisher.results / name), artifact_path="results")

    loaded = sum(s[bronze.LOADED] for s in reconciled.values())
    quarantined = sum(s[bronze.QUARANTINED] for s in reconciled.values())
    read = sum(s["read"] for s in reconciled.values())
    print(f"read {read:,d} rows from {len(reconciled)} tables: {loaded:,d} loaded into bronze Delta "
          f"tables, {quarantined:,d} quarantined with their reason, under {out_path / 'linkage'}")
    print(f"results (after disclosure control, see sdc_report.csv): {publisher.results}")
    tracking_uri = tracking.redact_uri(config.mlflow.tracking_uri)  # may hold a database password
    print(f"MLflow run {run_id} in {tracking_uri} (browse: .venv/bin/mlflow ui --backend-store-uri {tracking_uri})")
    return 0
