"""`ld-spark run`: the job's table of contents, raw extracts to results, tracked in MLflow.

Each stage reads its inputs from the catalog, calls its module's entry point, writes its
outputs to the catalog and releases what it must through the publisher:

    landing    io.read_landing            raw CSV/parquet -> every row as text, with table, file and line
    bronze     bronze.classify / typed    typed rows, each loaded, quarantined, duplicate or superseded
    linkage    link.people, link.stable,  identity records -> person_key (Splink + deterministic rules),
               erase                      keys kept from the last run; opted-out people erased again
    series     cohorts, justice, events,  cohorts, PNC records under the proven-reoffending rules,
               series, descriptives,      court cases, monthly events, the person-month panel,
               uptake                     Figure 1 and the descriptive results
    effects    effects.estimate,          every estimand (statsmodels), the economics, the event study,
               findings                   the brief's further findings, subgroups, representativeness
    sensitivity sensitivity.suite         the estimands under each sensitivity analysis (switchable)
    release    release.publish,           results/ after disclosure control, with its manifest;
               release.page               report.html, the run on one page, from the released files

A rerun on what the last finished run was made from stops before the first stage (refresh).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from ld_spark import (
    bronze,
    catalog,
    cohorts,
    console,
    descriptives,
    effects,
    erase,
    events,
    findings,
    fs,
    io,
    justice,
    link,
    lock,
    memory,
    refresh,
    rekey,
    sensitivity,
    series,
    uptake,
)
from ld_spark.config import Config
from ld_spark.contract import ESTIMANDS, ONWARD_REFERRALS, RESULT_SCHEMA, TABLES, source_name
from ld_spark.estimators import Estimate
from ld_spark.frames import local_frame
from ld_spark.release import page, report, tracking
from ld_spark.release.publish import MANIFEST, Publisher, write_csv, write_text

T = TypeVar("T")
# results/estimates.csv as an MLflow table of the run (released rows only).
ESTIMATES_TABLE = "tables/estimates.json"


def per_table(work: Callable[[str], T], tables: list[str], threads: int) -> dict[str, T]:
    """{table: work(table)} for every table, `threads` tables at a time.

    A table's bronze step is a few small Spark jobs and a Delta commit, mostly driver
    latency; Spark runs jobs from several driver threads side by side, so the cores stay busy.
    A failure is raised once every table has been tried (the others are not abandoned half-way).
    """
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return dict(zip(tables, pool.map(work, tables)))


def new_layouts(layouts: dict, new_files: dict[str, list[str]]) -> dict:
    """The layouts (io.check_tables') of only the new files, by table: what an incremental run lands."""
    chosen = {}
    for table, names in new_files.items():
        kind, groups = layouts[table]
        kept = {h: [f for f in files if Path(str(f)).name in names] for h, files in groups.items()}
        kept = {h: files for h, files in kept.items() if files}
        if kept:
            chosen[table] = (kind, kept)
    return chosen


@contextlib.contextmanager
def cached(df: DataFrame) -> Iterator[DataFrame]:
    """df kept in memory (spilling to disk) while the block reuses it."""
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield df
    finally:
        df.unpersist()


def run(spark: SparkSession, config: Config, raw: str, out: str, stages: console.Stages | None = None) -> int:
    # Structural checks on every table, and the key, first: a run that cannot finish writes nothing.
    layouts, faults = io.check_tables(spark, raw)
    if faults:
        raise faults[0]
    person_key = link.key.load_key(config.linkage, link.key.key_path(config.linkage), spark.sparkContext.master)
    # One run at a time per output directory; a second one stops here with a one-line reason.
    with lock.exclusive(out, config.paths.lock_lease_seconds):
        if catalog.unnested(spark, fs.resolve(out)):
            print(f"moved {catalog.LEGACY_SENSITIVITY.label} to {catalog.SENSITIVITY.label} (it held other tables)")
        made_from = refresh.made_from(fs.resolve(raw), layouts, config, person_key)
        last = refresh.unchanged_since(fs.resolve(out), made_from) if config.paths.skip_unchanged else None
        if last is not None:
            print(
                f"nothing new: {raw}, the settings and the code are as run {last} found them, and its tables "
                f"are unchanged: results/ are that run's (paths.skip_unchanged: false runs anyway)"
            )
            return 0
        # A raw folder that has only grown since the last finished run: land and classify what is new.
        increment = refresh.increment(fs.resolve(out), made_from) if config.paths.incremental else None
        job = Job(spark, config, fs.resolve(raw), fs.resolve(out), stages or console.Stages())
        refresh.started(fs.resolve(out))
        done = job.run(layouts, person_key, increment)
        refresh.record(fs.resolve(out), made_from, job.run_id, job.reconciled, stale=job.stale)
        return done


class Job:
    """One run: the session, config and folders every stage shares, and the stages in order."""

    def __init__(self, spark: SparkSession, config: Config, raw: fs.Location, out: fs.Location, stages: console.Stages):
        self.spark, self.config, self.raw, self.out, self.stages = spark, config, raw, out, stages
        self.run_id: str | None = None  # the MLflow run's, once it has started
        self.reconciled: dict[str, dict[str, int]] | None = None  # the bronze stage's reconciliation
        self.stale = False  # bronze gained rows after linkage (opt_out): the next run runs whole
        # The first day each source covers (cohorts.source_starts), found by series().
        self.source_starts: dict[str, dt.date] = {}
        self.linked_on = "spark"  # where the linkage scored (duckdb or spark): the truth's quality is scored there too
        self.main_fits: list[Estimate] | None = None  # the effects stage's estimates: the sensitivity suite's main
        self.publisher = Publisher(catalog.file(out, catalog.RESULTS), config.disclosure)

    def read(self, table: catalog.Table) -> DataFrame:
        return catalog.read(self.spark, self.out, table)

    def save(self, df: DataFrame, table: catalog.Table) -> DataFrame:
        return catalog.written(self.spark, df, self.out, table)

    def bronze(self, table: str) -> DataFrame:
        return self.read(catalog.bronze(table))

    def run(self, layouts: dict, person_key: bytes, increment: refresh.Increment | None = None) -> int:
        import mlflow

        with tracking.run(self.config, self.out, run_name="ld-spark run") as active:
            self.run_id = active.info.run_id
            self.log_generator()
            # spark.driver_memory may be `auto`: the heap the JVM was given (spark-submit's, under it).
            heap = self.spark.sparkContext.getConf().get("spark.driver.memory", "the JVM's default")
            mlflow.log_param("spark.driver_heap_used", heap)
            mlflow.log_param("refresh.incremental_since", increment.since if increment else "none (a full run)")
            with self.stage("landing") as notes:
                self.log_raw_inputs(layouts)
                if increment is None:
                    self.landing(layouts)
                    notes.append(f"{catalog.rows(self.out, catalog.LANDING):,d} raw rows from {len(layouts)} tables")
                else:
                    landed = self.landing_increment(layouts, increment)
                    rows = catalog.rows(self.out, catalog.LANDING) if landed is not None else 0
                    new_files = sum(len(f) for f in increment.new_files.values())
                    notes.append(
                        f"incremental since run {increment.since}: {new_files} new files in "
                        f"{len(increment.new_files)} tables, {rows or 0:,d} raw rows"
                    )
            with self.stage("bronze") as notes:
                if increment is None:
                    self.reconciled = self.bronze_stage(layouts, active.info.run_id)
                else:
                    self.reconciled, moved = self.bronze_increment(layouts, increment, landed, active.info.run_id)
                    notes.append(f"{moved.inserted:,d} bronze rows in, {moved.deleted:,d} out")
                notes.append(
                    f"{sum(r[bronze.LOADED] for r in self.reconciled.values()):,d} rows loaded, "
                    f"{sum(r[bronze.QUARANTINED] for r in self.reconciled.values()):,d} quarantined"
                )
            with self.stage("linkage") as notes:
                backend, reused = self.linkage(person_key, active.info.run_id)
                notes.append(
                    f"{catalog.rows(self.out, catalog.RECORD_PERSON_IDENTITY):,d} identity records, "
                    f"{catalog.rows(self.out, catalog.PERSONS):,d} people ({backend})"
                )
                if reused is not None:
                    notes.append(f"{reused:,d} scored pairs carried over from the last run (its model)")
                notes.extend(self.opt_out(person_key))
                self.release_reconciliation(self.reconciled)
            with self.stage("series") as notes:
                described, end = self.series(notes)
            with self.stage("effects") as notes:
                released = self.effects(described)
                shown = sum(r["estimate"] is not None for r in released)
                notes.append(f"{len(released)} estimands, {shown} released, {len(released) - shown} withheld")
            if self.config.sensitivity.enabled:
                with self.stage("sensitivity") as notes:
                    notes.append(f"{self.sensitivity(end)} rows")
            with self.stage("release") as notes:
                notes.append(f"{self.release(active.info.run_id)} files in {self.publisher.results}")
        self.summary(active.info.run_id)
        return 0

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        """A stage timed in MLflow and shown as one console line (its notes after its seconds)."""
        with tracking.stage(name), self.stages.stage(name) as notes:
            yield notes
            # What the stage freed goes back to the system, not kept for allocations the next
            # stage's threads make elsewhere (ld_spark/memory.py); timed with the stage.
            memory.hand_back()

    def log_generator(self) -> None:
        """A synthetic extract's scale and seed, as params (the generator writes them beside its truth)."""
        import mlflow

        info = catalog.file(self.raw, catalog.GENERATOR_INFO)
        if fs.exists(info):
            generated = json.loads(fs.read_text(info))
            mlflow.log_params({"synthetic.scale": generated["scale"], "synthetic.seed": generated["seed"]})

    def log_raw_inputs(self, layouts: dict) -> None:
        """Every raw table's folder as an input dataset of the run (its files' names and sizes)."""
        tracking.log_raw_inputs(
            {
                t: [e for e in fs.listing(fs.join(self.raw, t)) if not io.SPARK_MARKERS.fullmatch(e.name)]
                for t in layouts
            },
            {t: fs.join(self.raw, t) for t in layouts},
        )

    def landing(self, layouts: dict) -> None:
        """Raw extracts -> the landing table (every table's rows, one commit); its Delta version is
        a param of the run."""
        import mlflow

        rows = io.read_landing(self.spark, layouts)
        mlflow.log_param("delta_version.landing", catalog.write(rows, self.out, catalog.LANDING))

    def bronze_stage(self, layouts: dict, run_id: str) -> dict[str, dict[str, int]]:
        """Landing -> bronze tables and one quarantine table, and the reconciliation that proves
        no row was lost: `read` is counted from the raw files apart from the parser, so a row
        lost or invented anywhere between the raw bytes and the bronze states stops the run."""
        threads = self.config.spark.concurrent_tables
        classified: dict[str, DataFrame] = {}
        # Counted first, while the Python workers that landing's readers started are still idle
        # and so reused: workers started at the end of bronze would hold their memory (Spark
        # stops an idle worker after a minute) into the linkage stage's peak.
        read = io.raw_record_counts(self.spark, layouts)

        landing = self.read(catalog.LANDING)

        def load(table: str) -> None:
            classified[table] = (
                io.landed(landing, table).transform(bronze.classify(table)).persist(StorageLevel.MEMORY_AND_DISK)
            )
            catalog.write(
                classified[table].transform(bronze.typed(table)),
                self.out,
                catalog.bronze(table),
                checks=bronze.constraints(table),
            )

        try:
            per_table(load, list(TABLES), threads)
            states = bronze.every_state_count(classified)
            catalog.write(bronze.quarantine({t: classified[t] for t in TABLES}, run_id), self.out, catalog.QUARANTINE)
        finally:
            for df in classified.values():
                df.unpersist()
        return {table: bronze.reconciled(table, read[table], states[table]) for table in TABLES}

    def landing_increment(self, layouts: dict, increment: refresh.Increment) -> int | None:
        """The new raw files' rows added to the landing table in one commit; returns its version
        (None: no new file)."""
        import mlflow

        new = new_layouts(layouts, increment.new_files)
        if not new:
            return None
        catalog.keep_changes(self.spark, self.out, catalog.LANDING)
        version = catalog.append(io.read_landing(self.spark, new), self.out, catalog.LANDING)
        mlflow.log_param("delta_version.landing", version)
        return version

    def bronze_increment(
        self, layouts: dict, increment: refresh.Increment, landed: int | None, run_id: str
    ) -> tuple[dict[str, dict[str, int]], rekey.Moved]:
        """The new landing rows into bronze (`landed`: the landing commit that added them): every
        landed row of each key they hold is classified again and replaces what bronze and the
        quarantine held for that key (ld_spark.rekey). The reconciliation is the last run's,
        moved by the states those rows left and took, with the new files' records counted from
        their bytes. Returns it, and the bronze rows the MERGEs inserted and deleted."""
        new = new_layouts(layouts, increment.new_files)
        reconciled = {t: {bronze.ERASED: 0, **increment.reconciliation[t]} for t in TABLES}
        if landed is None:
            return reconciled, rekey.Moved({}, 0, 0, 0)
        read = io.raw_record_counts(self.spark, new)  # first, as in bronze_stage
        landing = catalog.path(self.out, catalog.LANDING)
        added = catalog.changes(self.spark, self.out, catalog.LANDING, landed)
        touched = {t: io.landed(added, t).transform(bronze.key_values(t)) for t in new}
        moved = rekey.reclassified(
            self.spark,
            self.out,
            io.read_delta(self.spark, landing, version=landed - 1),
            io.read_delta(self.spark, landing, version=landed),
            touched,
            run_id,
            self.config.spark.concurrent_tables,
        )
        for table, m in moved.items():
            counts = reconciled[table]
            states = {s: counts[s] + m.states[s] for s in bronze.STATES}
            reconciled[table] = bronze.reconciled(table, counts["read"] + read[table], states, counts[bronze.ERASED])
        total = rekey.Moved(
            {}, *(sum(getattr(m, f) for m in moved.values()) for f in ("inserted", "deleted", "newly_loaded"))
        )
        return reconciled, total

    def release_reconciliation(self, reconciled: dict[str, dict[str, int]]) -> None:
        """The reconciliation: exact inside (linkage/), released to results/ and MLflow."""
        rows = [{"source_table": table, **counts} for table, counts in reconciled.items()]
        columns = bronze.RECONCILIATION_COLUMNS
        write_csv(catalog.file(self.out, catalog.RECONCILIATION_FILE), columns, rows)
        released = self.publisher.table("reconciliation.csv", columns, rows)
        tracking.log_rows(
            "rows_",
            [{**r, "source_table": source_name(r["source_table"])} for r in released],
            "source_table",
            columns[1:],
        )

    def linkage(self, person_key: bytes, run_id: str) -> tuple[str, int | None]:
        """Bronze identity tables -> record_person (every record's person_key) and the analysis
        layer's persons; the model JSON, its match weights and the linkage quality released.
        People keep the person_keys the last run in OUT_DIR gave them (link.stable), and the keys
        that did not carry over are added to person_key_changes. Splink's scores are kept for the
        next run (save_scores). Returns the linkage backend used, and how many of the last run's
        scored pairs were carried over (None: every pair was scored)."""
        import mlflow

        conf = self.config.linkage
        identity = {table: self.bronze(table) for table, _, _ in link.identity.SOURCES.values()}
        model_in = fs.resolve(conf.model_in) if conf.model_in else None
        s = self.config.sensitivity
        thresholds = tuple(s.match_thresholds) if s.enabled else ()
        # The pairs are kept down to the analyses' lowest threshold even when they are off, so
        # that a later run with them on can carry this run's scores over.
        keep_from = min((conf.match_threshold, *s.match_thresholds))
        work = catalog.file(self.out, catalog.SPLINK_WORK)
        previous = catalog.read_latest(self.spark, self.out, catalog.RECORD_PERSON_IDENTITY)
        with (
            link.people(
                self.spark, identity, conf, person_key, work, model_in, thresholds, self.earlier_scores(), keep_from
            ) as people,
            # Kept while the block reads it: carrying keys over reads this run's linkage three
            # times (the changes twice, the keyed records once), and each read would otherwise
            # redo the connected components and the conflict split.
            cached(people.record_person) as fresh,
        ):
            carried = link.stable.carried(fresh, previous, person_key, run_id)
            # The changes first: a run stopped between the two writes records them again, with
            # its own run id, rather than not at all.
            catalog.append(carried.changes, self.out, catalog.PERSON_KEY_CHANGES)
            linked = self.save(carried.record_person, catalog.RECORD_PERSON_IDENTITY)
            # From the cached identity records, before the block releases them.
            self.save(link.identity.person_attributes(people.records, linked), catalog.PERSONS)
            # The same records linked at the sensitivity analyses' thresholds.
            others = {
                sensitivity.threshold_analysis(t): self.save(
                    df, catalog.variant(catalog.RECORD_PERSON_IDENTITY, sensitivity.threshold_analysis(t))
                )
                for t, df in people.at_threshold.items()
            }
            self.save_scores(people)
        model = people.scored.model
        mlflow.log_param("linkage.backend_used", people.backend)
        event_tables = {table: self.bronze(table) for table in link.events.EVENT_PARENTS}
        # Kept where the thresholds' linkages reach their event rows' people through them too.
        parents = link.events.event_parents(event_tables)
        with cached(parents) if others else contextlib.nullcontext(parents) as parents:
            self.save(link.events.record_person(linked, parents), catalog.RECORD_PERSON)
            for analysis, identity_people in others.items():
                self.save(
                    link.events.record_person(identity_people, parents),
                    catalog.variant(catalog.RECORD_PERSON, analysis),
                )

        write_text(catalog.file(self.out, catalog.MODEL_FILE), model)
        # Each blocking rule's comparisons: exact inside, released to results/ and MLflow.
        write_csv(catalog.file(self.out, catalog.BLOCKING_FILE), link.blocking.COLUMNS, people.blocking)
        blocking = self.publisher.table("linkage_blocking.csv", link.blocking.COLUMNS, people.blocking)
        tracking.log_rows("linkage.blocking.", blocking, "rule", link.blocking.COLUMNS[1:])
        mlflow.log_text(model, "linkage/splink_model.json")
        weights = report.match_weights_chart(model, self.publisher.path("match_weights.png"))
        mlflow.log_artifact(str(weights), artifact_path="linkage")

        # Scored against the truth where the linkage scored: in the driver on DuckDB, or on Spark.
        self.linked_on = people.backend
        rows = link.quality.quality_rows(linked, self.truth(), people.backend)
        quality = self.publisher.table("linkage_quality.csv", link.quality.QUALITY_COLUMNS, rows)
        tracking.log_rows("linkage.", quality, "source_table", link.quality.QUALITY_COLUMNS[1:])
        mlflow.log_param("linkage.pairs_carried_over", "none" if people.scored.reused is None else people.scored.reused)
        return people.backend, people.scored.reused

    def earlier_scores(self) -> link.model.Earlier | None:
        """What the last run in OUT_DIR scored (save_scores), unless linkage.reuse_scores is off."""
        scope = catalog.file(self.out, catalog.SCORES_FILE)
        if not self.config.linkage.reuse_scores or not fs.exists(scope):
            return None
        kept = json.loads(fs.read_text(scope))
        tuples = catalog.read_latest(self.spark, self.out, catalog.SCORED_TUPLES)
        pairs = catalog.read_latest(self.spark, self.out, catalog.SCORED_PAIRS)
        if tuples is None or pairs is None:
            return None
        return link.model.Earlier(kept["model"], kept["keep_from"], tuples, pairs)

    def save_scores(self, people: link.Linked) -> None:
        """The tuples Splink scored and the pairs it kept, for the next run to carry over. The
        scope file (the model's digest) goes first and comes back last: scores a run stopped
        while writing are never taken for a model's."""
        scope = catalog.file(self.out, catalog.SCORES_FILE)
        fs.delete(scope)
        scored = people.tuples.select(link.identity.UNIQUE_ID, link.identity.content())
        catalog.write(scored, self.out, catalog.SCORED_TUPLES)
        catalog.write(people.scored.pairs, self.out, catalog.SCORED_PAIRS)
        fs.write_text(scope, json.dumps({"model": people.scored.digest, "keep_from": people.keep_from}))

    def opt_out(self, person_key: bytes) -> list[str]:
        """The people on OUT_DIR's opt-out register (`ld-spark forget`), erased again from what
        this run has written so far (landing, bronze, linkage, persons), before the cohorts onward
        are made from it: RAW_DIR may still hold them until the supplier resends it without them
        (a full run lands every file again; an incremental one only the new files). The
        reconciliation counts their raw rows as erased.
        Their records did take part in training and scoring the linkage model and in its quality
        figures (aggregates). The counts stay on the console (exact and small: not for MLflow)."""
        hashes = erase.registered(self.spark, self.out, person_key)
        if hashes is None:
            return []
        threads = self.config.spark.concurrent_tables
        erased = erase.erase(self.spark, self.out, hashes, person_key, threads, run_id=self.run_id or "")
        self.reconciled = bronze.less_erased(self.reconciled or {}, erased.raw)
        notes = [f"{erased.people} opted-out people erased ({erased.records} records)"] if erased.people else []
        if erased.promoted:
            # A row that shared a key with an erased one is loaded now, after linkage: this run
            # leaves it out of the analysis; the next run (never "nothing new") links it.
            self.stale = True
            notes.append("rows that shared a key with theirs are linked at the next run")
        return notes

    def truth(self) -> DataFrame | None:
        """A synthetic extract's record -> true person map (contract `_truth/`), else None."""
        truth_file = catalog.file(self.raw, catalog.TRUTH_RECORD_PERSON)
        return self.spark.read.csv(str(truth_file), header=True) if fs.exists(truth_file) else None

    def series(self, notes: list[str]) -> tuple[list[dict], dt.date]:
        """Linked bronze tables -> cohorts, offences, court cases, events and the person-month
        panel; Figure 1, the descriptive results and the programme-delivery tables released.
        Returns the descriptive rows of the results table, and the extract's end used; what the
        user should know of the extract's end goes to `notes`."""
        import mlflow

        a = self.config.analysis
        months = cohorts.source_months({t: self.bronze(t) for t in cohorts.EXTRACT_DATES})
        end = cohorts.follow_up_end(a.follow_up_end, months)
        mlflow.log_param("analysis.follow_up_end_used", end.isoformat())
        self.source_starts = cohorts.source_starts(a.source_starts, months)
        begins = ", ".join(f"{source} {day:%Y-%m}" for source, day in sorted(self.source_starts.items()))
        mlflow.log_param("analysis.source_starts_used", begins)
        notes.append(f"sources begin: {begins} (a month before its source began is not observed)")
        both, referred, panel = self.analysis_tables(self.read(catalog.RECORD_PERSON), end)
        self.cohort_linkage_quality(both)
        return self.release_series(both, referred, panel, end, notes), end

    def cohort_linkage_quality(self, cohort_index: DataFrame) -> None:
        """results/linkage_quality_by_cohort.csv: linkage quality in each cohort's pre and post
        periods, where the extract carries its truth (a real extract has none to score against)."""
        truth = self.truth()
        if truth is None:
            return
        a = self.config.analysis
        identity = {table: self.bronze(table) for table, _, _ in link.identity.SOURCES.values()}
        rows = link.quality.cohort_quality_rows(
            self.read(catalog.RECORD_PERSON_IDENTITY),
            truth,
            cohort_index,
            link.quality.record_dates(identity),
            a.pre_months,
            a.post_months,
            self.linked_on,
        )
        self.publisher.table("linkage_quality_by_cohort.csv", link.quality.COHORT_QUALITY_COLUMNS, rows)

    def analysis_tables(
        self, record_person: DataFrame, end: dt.date, analysis: str | None = None
    ) -> tuple[DataFrame, DataFrame, DataFrame]:
        """record_person -> the cohorts onward (referrals, cohorts, offences, court cases, events,
        panel, referred), written as the main tables or as `analysis`'s variants of them.
        Returns cohort_index, referred and panel."""
        a = self.config.analysis

        def save(df: DataFrame, table: catalog.Table) -> DataFrame:
            return self.save(df, catalog.variant(table, analysis))

        # Exact dates (referral, index) stay in the linkage layer; the analysis layer gets months.
        referrals = save(self.bronze("ld_referrals").transform(cohorts.referrals(record_person)), catalog.REFERRALS)
        evaluation = referrals.transform(cohorts.evaluation_cohort(a.window(), end, a.min_follow_up_months))
        pnc = self.bronze("pnc/offences").transform(justice.linked_offences(record_person, evaluation))
        with cached(pnc) as offences:
            both = save(
                cohorts.both_cohorts(evaluation, offences, a)
                .transform(justice.with_follow_up(end, a))
                .transform(cohorts.with_attributes(referrals, a.window())),
                catalog.COHORT_INDEX,
            )
            save(both.transform(cohorts.dates_as_months), catalog.COHORTS)
            cases = self.bronze("hmcts/cases").transform(justice.linked_cases(record_person, both))
            with cached(offences.transform(justice.index_offences(both, a.index_offence_tolerance_days))) as index_ids:
                classified = save(offences.transform(justice.classified_offences(both, index_ids, a)), catalog.OFFENCES)
                save(
                    cases.transform(
                        justice.classified_cases(both, index_ids, offences, self.bronze("hmcts/hearings"), end, a)
                    ),
                    catalog.COURT_CASES,
                )
            at_risk = offences.transform(justice.at_risk(both, end, self.config.economics.share_of_sentence_served, a))
            dated = events.cohort_events(self.bronze, record_person, both)
            monthly = save(series.events(dated, justice.offence_events(classified), both, a), catalog.EVENTS)
            panel = save(series.panel(both, monthly, at_risk, a, self.source_starts), catalog.PANEL)
            scores = events.self_rated_health(self.bronze("ndtms/top"), record_person, both)
            save(series.self_rated_health(scores, both, a), catalog.SELF_RATED_HEALTH)
        referred = save(referrals.transform(cohorts.referred(a.window())), catalog.REFERRED)
        return both, referred, panel

    def release_series(
        self, both: DataFrame, referred: DataFrame, panel: DataFrame, end: dt.date, notes: list[str]
    ) -> list[dict]:
        """Figure 1, the descriptives, the vulnerability profile and the programme-delivery tables."""
        import mlflow

        publish, path = self.publisher, self.publisher.path
        rates = series.figure1_rows(panel)
        scores = series.self_rated_health_rows(self.read(catalog.SELF_RATED_HEALTH))
        report.figure1(
            publish.table("figure1.csv", ["cohort", "rel_month", "outcome", "persons", "events", "rate"], rates),
            publish.table("figure1_self_rated_health.csv", ["cohort", "rel_month", "reviews", "mean_score"], scores),
            path("figure1.png"),
        )
        site_counts = [r.asDict() for r in uptake.site_onward_counts(referred).collect()]
        a = self.config.analysis
        described = descriptives.descriptive_estimates(
            both, referred, panel, a.prior_contact_months, self.source_starts
        )
        described += [e.row() for e in uptake.delivery_estimates(referred, site_counts)]
        n_evaluation = next(r["estimate"] for r in described if r["estimand"] == "n_evaluation")
        described += descriptives.referral_flow(self.read(catalog.REFERRALS), a.window(), n_evaluation)
        described += descriptives.untimed_cases(self.read(catalog.COURT_CASES), a.justice_spec)
        released = publish.estimates("descriptives.csv", described)
        publish.table(
            "vulnerability_profile.csv",
            ["vulnerability", "people", "referred", "pct"],
            descriptives.vulnerability_profile(descriptives.vulnerability_counts(referred)),
        )
        sites = publish.table("site_onward_referrals.csv", ["site_code", "referrals", *ONWARD_REFERRALS], site_counts)
        for service in ONWARD_REFERRALS:
            report.funnel_plot(sites, service, path(f"site_funnel_{service}.png"))
        declining = publish.table(
            "declined_by_vulnerability.csv",
            ["vulnerability", "people", "declined", "people_without", "declined_without"],
            [r.asDict() for r in uptake.declined_by_vulnerability(referred).collect()],
        )
        report.declined_chart(declining, path("declined_by_vulnerability.png"))
        # Released (rounded) counts only: these are people.
        not_followed = {
            r["estimand"]: r["estimate"] for r in released if r["estimand"].startswith("n_justice_not_followed_")
        }
        mlflow.log_metrics({k: float(v) for k, v in not_followed.items() if v is not None})
        notes.append(
            f"extract end {end.isoformat()}; left out of the justice outcomes (follow-up + waiting period "
            "past the end): "
            + ", ".join(
                f"{k.rsplit('_', 1)[1]} {v if v is not None else 'suppressed'}" for k, v in not_followed.items()
            )
        )
        return described

    def effects(self, described: list[dict]) -> list[dict]:
        """Analysis tables -> every estimand of contract section 4: the gold analysis/estimates
        table (exact), results/estimates.csv (released, returned), the forest plot and the event study."""
        a = self.config.analysis
        panel = self.read(catalog.PANEL)
        frames = effects.frames(panel, self.read(catalog.OFFENCES), self.read(catalog.COURT_CASES), a)
        further = findings.frames(
            panel,
            self.read(catalog.COHORTS),
            self.read(catalog.PERSONS),
            self.read(catalog.SELF_RATED_HEALTH),
            a,
        )
        self.main_fits = effects.fitted(frames, a, self.config.economics)
        fitted = [*self.main_fits, *findings.estimates(further)]
        rows = effects.results_table(described, fitted)
        self.save(local_frame(self.spark, [_typed_result(r) for r in rows], RESULT_SCHEMA), catalog.ESTIMATES)
        derived = [name for name in ESTIMANDS if name.startswith("savings_")]
        released = self.publisher.estimates("estimates.csv", rows, derived={"custody_or": derived})
        report.forest_plot(released, self.publisher.path("forest_plot.png"))
        tracking.log_rows("", released, "estimand", ["estimate", "ci_low", "ci_high", "p_value"])
        study = self.publisher.event_study("event_study.csv", effects.event_study(panel, a))
        report.event_study_chart(study, a.event_study_reference, self.publisher.path("event_study.png"))
        subgroup_rows = [
            {"subgroup": name, **e.row()}
            for name, people in findings.subgroups(further.people).items()
            for e in effects.subgroup_estimates(frames.of(people))
        ]
        self.publisher.grouped("subgroups.csv", "subgroup", subgroup_rows)
        self.publisher.representativeness("representativeness.csv", findings.representativeness(further.people))
        tracking.describe(report.run_description(released))
        tracking.log_table(released, ESTIMATES_TABLE)
        read = (catalog.PANEL, catalog.OFFENCES, catalog.COURT_CASES, catalog.COHORTS, catalog.PERSONS)
        tracking.log_delta_inputs(
            {t.label: (catalog.path(self.out, t), io.delta_version(catalog.path(self.out, t))) for t in read}
        )
        return released

    def sensitivity(self, end: dt.date) -> int:
        """Every effect estimand under each sensitivity analysis (contract section 4b): the exact
        analysis/sensitivity_estimates table, results/sensitivity.csv (released) and its forest plot. The
        linkage thresholds rebuild the cohorts onward from their own record_person. Returns the rows."""
        a, costs = self.config.analysis, self.config.economics
        tables = (catalog.PANEL, catalog.OFFENCES, catalog.COURT_CASES)
        with contextlib.ExitStack() as stack:
            # Each analysis reads the three tables again: from memory, not Delta.
            main = sensitivity.Tables(*(stack.enter_context(cached(self.read(t))) for t in tables))
            rows = sensitivity.suite(main, a, costs, self.config.sensitivity.workers, self.main_fits)
        # The suite's frames, and each threshold's, freed go back to the system before the next
        # part, while the JVM grows its heap in the thresholds' rebuild (ld_spark/memory.py).
        memory.hand_back()
        for threshold in self.config.sensitivity.match_thresholds:
            analysis = sensitivity.threshold_analysis(threshold)
            _, _, panel = self.analysis_tables(
                self.read(catalog.variant(catalog.RECORD_PERSON, analysis)), end, analysis
            )
            offences, cases = (self.read(catalog.variant(t, analysis)) for t in (catalog.OFFENCES, catalog.COURT_CASES))
            rows += sensitivity.rows(analysis, effects.estimate(panel, offences, cases, a, costs))
            memory.hand_back()
        rows = sensitivity.in_order(rows)
        self.save(
            local_frame(
                self.spark, [{"analysis": r["analysis"], **_typed_result(r)} for r in rows], sensitivity.SCHEMA
            ),
            catalog.SENSITIVITY,
        )
        savings = [name for name in ESTIMANDS if name.startswith("savings_")]
        released = self.publisher.grouped("sensitivity.csv", "analysis", rows, derived={"custody_or": savings})
        report.sensitivity_plot(released, self.publisher.path("sensitivity.png"))
        tracking.log_rows(
            "",
            [{**r, "key": f"sensitivity.{r['analysis']}.{r['estimand']}"} for r in released],
            "key",
            ["estimate", "ci_low", "ci_high", "p_value"],
        )
        return len(rows)

    def release(self, run_id: str) -> int:
        """The SDC report and the HTML page of the released files, then results/ replaced whole;
        MLflow gets exactly the files its manifest lists. Returns how many files were released."""
        import mlflow

        self.publisher.write_report()
        page.write(self.publisher.staging, run_id, self.config.disclosure)  # from the released files only
        report_rows = self.publisher.report.rows
        mlflow.log_metric("sdc.cells_ruled", len(report_rows))
        mlflow.log_metric(
            "sdc.cells_suppressed_or_withheld", sum(r["action"] in ("suppressed", "withheld") for r in report_rows)
        )
        versions = catalog.versions(self.out)
        manifest = self.publisher.commit(run_id, versions)
        # The version of every table the run leaves, searchable in MLflow (the manifest has them too).
        mlflow.set_tags({f"delta_version.{name}": str(v) for name, v in versions.items()})
        for name in [*manifest["files"], MANIFEST]:
            if name != "match_weights.png":  # logged with the model, under linkage/
                mlflow.log_artifact(str(self.publisher.local(name)), artifact_path="results")
        return len(manifest["files"])

    def summary(self, run_id: str) -> None:
        """Where things are (the stage lines above gave the counts)."""
        print(
            f"Delta tables (landing, bronze, quarantined rows with their reasons): {fs.join(self.out, catalog.LINKAGE)}"
        )
        print(f"results (after disclosure control, see sdc_report.csv; report.html to read): {self.publisher.results}")
        tracking_uri = tracking.redact_uri(self.config.mlflow.tracking_uri)  # may hold a database password
        print(f"MLflow run {run_id} in {tracking_uri} (browse: .venv/bin/mlflow ui --backend-store-uri {tracking_uri})")


def _typed_result(row: dict) -> dict:
    """A results row with its numbers as floats, for the gold table's schema."""
    numbers = ("estimate", "ci_low", "ci_high", "p_value")
    return {
        k: (float(row[k]) if k in numbers and row[k] is not None else row[k])
        for k in ("estimand", *numbers, "n", "method")
    }
