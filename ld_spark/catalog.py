"""Every table and file the job writes under OUT_DIR, declared once: its layer and its name.

Two layers. `linkage/` holds direct identifiers and exact dates (landing copies, bronze tables,
the record-to-person map, the pseudonymisation inputs) and never leaves the secure environment.
`analysis/` holds person_key, year of birth, sex, months and events: what the estimators read.
`results/` (written by release.publish only) is what leaves.

A contract table (`mhsds/mhs001_mpi`) is stored under a folder name without the slash
(`mhsds__mhs001_mpi`); `folder` is the only place that spelling is made. Its name in result
files and truth files, `mhsds.mhs001_mpi`, is the contract's (contract.source_name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from ld_spark import fs, io
from ld_spark.contract import TABLES

LINKAGE = "linkage"
ANALYSIS = "analysis"


@dataclass(frozen=True)
class Table:
    layer: str
    name: str
    partition_by: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """layer/name: the table's folder under OUT_DIR, as logs, Spark's job descriptions and
        MLflow name it."""
        return f"{self.layer}/{self.name}"


def folder(contract_table: str) -> str:
    return contract_table.replace("/", "__")


def bronze(contract_table: str) -> Table:
    """A raw table typed, deduplicated and with each row's state (loaded, quarantined, ...)."""
    return Table(LINKAGE, f"bronze/{folder(contract_table)}")


# Every row of every raw table as text, with its table, file and line (identifiers included).
LANDING = Table(LINKAGE, "landing", partition_by=(io.SOURCE_TABLE,))
QUARANTINE = Table(LINKAGE, "quarantine", partition_by=("source_table",))
RECORD_PERSON_IDENTITY = Table(LINKAGE, "record_person_identity")  # identity records -> person_key
RECORD_PERSON = Table(LINKAGE, "record_person")  # every record -> person_key
# What Splink scored, for the next run to carry over (link.model.Earlier): the identity tuples
# scored (unique_id, content) and the pairs kept (id_l, id_r, match_weight); their model in SCORES_FILE.
SCORED_TUPLES = Table(LINKAGE, "scores/tuples")
SCORED_PAIRS = Table(LINKAGE, "scores/pairs")
REFERRALS = Table(LINKAGE, "referrals")  # L&D referrals with exact dates
COHORT_INDEX = Table(LINKAGE, "cohort_index")  # cohort members with exact index dates
# The national data opt-out (ld_spark.erase): keyed hashes of opted-out NHS numbers, never the
# numbers; and one row per erasure request (counts and a keyed hash of the request).
OPT_OUT = Table(LINKAGE, "opt_out")
ERASURE_AUDIT = Table(LINKAGE, "erasure_audit")

PERSONS = Table(ANALYSIS, "persons")
COHORTS = Table(ANALYSIS, "cohorts")
OFFENCES = Table(ANALYSIS, "offences")
COURT_CASES = Table(ANALYSIS, "court_cases")
EVENTS = Table(ANALYSIS, "events")
PANEL = Table(ANALYSIS, "panel")
SELF_RATED_HEALTH = Table(ANALYSIS, "self_rated_health")  # NDTMS TOP reviews by month from index
REFERRED = Table(ANALYSIS, "referred")
# Person keys that did not carry over from one run to the next (link.stable), every run's.
PERSON_KEY_CHANGES = Table(ANALYSIS, "person_key_changes")
ESTIMATES = Table(ANALYSIS, "estimates")
# Every estimand under each sensitivity analysis. Not at `analysis/sensitivity`: that folder holds
# the analyses' own tables (variant()), and a table's folder must hold no other table: VACUUM
# deletes every file in it its own versions do not name, the inner tables' files among them.
SENSITIVITY = Table(ANALYSIS, "sensitivity_estimates")
LEGACY_SENSITIVITY = Table(ANALYSIS, "sensitivity")  # where runs before it was moved wrote it


def variant(table: Table, analysis: str | None) -> Table:
    """The table as a sensitivity analysis rebuilds it (same layer, under sensitivity/<analysis>/);
    None: the main table."""
    if analysis is None:
        return table
    return Table(table.layer, f"sensitivity/{analysis}/{table.name}", table.partition_by)


def unnested(spark: SparkSession, out: str | Path) -> bool:
    """An OUT_DIR written before SENSITIVITY moved: the estimates table at LEGACY_SENSITIVITY,
    around the analyses' own tables, copied to SENSITIVITY (its current version, in one commit:
    each run writes it whole; its earlier versions are not kept), then its log and files deleted,
    the log first (then it is no table). True when it was copied. A stop part-way leaves a whole
    table at SENSITIVITY, or none, and the next call finishes; so does a call after the earlier
    code was run again."""
    legacy = fs.join(out, ANALYSIS, LEGACY_SENSITIVITY.name)
    own = [e for e in fs.listing(legacy) if e.name == "_delta_log" or not e.is_dir]
    if not own:
        return False
    # A new table with a commit (its _delta_log folder may be made before the first commit is).
    made = any(io.COMMIT_FILE.fullmatch(e.name) for e in fs.listing(fs.join(path(out, SENSITIVITY), "_delta_log")))
    copied = not made and any(e.name == "_delta_log" for e in own)
    if copied:
        write(io.read_delta(spark, legacy), out, SENSITIVITY)
    for entry in sorted(own, key=lambda e: e.name != "_delta_log"):
        fs.delete(entry.location)
    return copied


# Files beside the tables (not Delta): the operator's exact reconciliation, the trained model,
# Splink's scratch space, and the released results.
RECONCILIATION_FILE = (LINKAGE, "reconciliation.csv")
MODEL_FILE = (LINKAGE, "model/splink_model.json")
BLOCKING_FILE = (LINKAGE, "model/blocking.csv")  # each prediction rule's comparisons, the run's last
SPLINK_WORK = (LINKAGE, "_splink_work")
SCORES_FILE = (LINKAGE, "scores/scope.json")  # the scores' model digest and lowest match probability
RESULTS = ("results",)
LOG_FILE = ("logs", "ld-spark.log")  # what the JVM and the libraries say (ld_spark/console.py)

# Beside a synthetic extract, under RAW_DIR (contract: `_truth/`): who is who, and how it was made.
TRUTH_RECORD_PERSON = ("_truth", "record_person.csv")
GENERATOR_INFO = ("_truth", "generator.json")


def path(out: str | Path, table: Table) -> fs.Location:
    return fs.join(out, table.layer, table.name)


def file(out: str | Path, where: tuple[str, ...]) -> fs.Location:
    return fs.join(out, *where)


def read(spark: SparkSession, out: str | Path, table: Table) -> DataFrame:
    return io.read_delta(spark, path(out, table))


def rows(out: str | Path, table: Table) -> int | None:
    """Rows the table's latest write put in it, from its Delta log (no Spark job)."""
    return io.rows_written(path(out, table))


# Table properties, set when a table is made (Delta takes a writer's properties only then):
# - every version stays readable for 13 months: the log's entries and the files a later version
#   replaced are kept 400 days (Delta's defaults: 30 days of log, 7 days of files), so last
#   month's run can be read as it was (time travel) until VACUUM runs with a shorter retention;
# - Delta keeps each file's minimum and maximum of its first columns in the table's log, and log
#   files outlive VACUUM: a surname or NHS number would stay there after an erasure
#   (ld_spark.erase). So the linkage layer's tables keep no column statistics (only row counts);
#   nothing reads them by a filter that statistics would speed up.
RETENTION = {
    "delta.logRetentionDuration": "interval 400 days",
    "delta.deletedFileRetentionDuration": "interval 400 days",
}
NO_COLUMN_STATISTICS = {"delta.dataSkippingNumIndexedCols": "0"}
# Landing and bronze keep Delta's Change Data Feed: an incremental run (ld_spark/refresh.py)
# reads the rows its landing commit added, and each bronze MERGE's inserts and deletes, from
# it. An append's changes are its own data files; a MERGE writes its deleted rows to
# `_change_data/`, which VACUUM removes with the files they came from.
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}


def keeps_changes(table: Table) -> bool:
    return table == LANDING or table.name.startswith("bronze/")


def properties(table: Table) -> dict[str, str]:
    return (
        RETENTION
        | (NO_COLUMN_STATISTICS if table.layer == LINKAGE else {})
        | (CHANGE_FEED if keeps_changes(table) else {})
    )


def write(df: DataFrame, out: str | Path, table: Table, checks: dict[str, str] | None = None) -> int:
    """Replace the table's content in one Delta commit; returns the version written.
    checks: CHECK constraints (name -> SQL condition) made with the table; every later write
    that breaks one fails (a guard against a bug, not a rule for input: bronze quarantines).
    They are set as the table properties Delta keeps them in (`delta.constraints.<name>`), in
    the commit that makes the table: an ALTER TABLE ADD CONSTRAINT each, as before, was a commit
    and a scan of the table apiece (2.2 s for two on hes_ae at scale 1; bronze has 45)."""
    target = path(out, table)
    constraints = {f"delta.constraints.{name}": condition for name, condition in (checks or {}).items()}
    with io.job_description(df.sparkSession, f"write {table.label}"):
        io.write_delta(
            df, target, partition_by=list(table.partition_by) or None, properties=properties(table) | constraints
        )
    return io.delta_version(target)


def append(df: DataFrame, out: str | Path, table: Table) -> int:
    """Add the rows to the table (made if absent) in one Delta commit; returns the version written."""
    target = path(out, table)
    with io.job_description(df.sparkSession, f"append to {table.label}"):
        io.append_delta(df, target, properties=properties(table))
    return io.delta_version(target)


def keep_changes(spark: SparkSession, out: str | Path, table: Table) -> None:
    """Turn the Change Data Feed on for a table made before it was one of its properties."""
    target = path(out, table)
    if io.table_properties(spark, target).get("delta.enableChangeDataFeed") != "true":
        spark.sql(f"ALTER TABLE delta.`{target}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")


def changes(spark: SparkSession, out: str | Path, table: Table, version: int) -> DataFrame:
    """The rows one commit of the table inserted or deleted (Change Data Feed), with
    `_change_type`: insert, delete, update_preimage or update_postimage."""
    return io.read_changes(spark, path(out, table), version)


def replace_keys(
    spark: SparkSession, rows: DataFrame, keys: DataFrame, out: str | Path, table: Table, key: list[str]
) -> int:
    """In one Delta MERGE: every row of the table whose key is one of `keys` is deleted, and
    `rows` (whose keys are all among them) are inserted. Returns the version written."""
    target = path(out, table)
    with io.job_description(spark, f"merge into {table.label}"):
        io.merge_replace(spark, target, rows, keys, key)
    return io.delta_version(target)


def read_latest(spark: SparkSession, out: str | Path, table: Table) -> DataFrame | None:
    """The table as its latest version holds it, pinned to that version (a later write to the
    table does not change what this frame reads), or None if there is no such table yet."""
    target = path(out, table)
    if not fs.is_dir(fs.join(target, "_delta_log")):
        return None
    return io.read_delta(spark, target, version=io.delta_version(target))


def written(spark: SparkSession, df: DataFrame, out: str | Path, table: Table) -> DataFrame:
    """Write, then read back: later stages start from the stored table, not the plan that made it."""
    write(df, out, table)
    return read(spark, out, table)


def tables() -> list[Table]:
    """Every table a run writes, in the order the stages write them (not OPT_OUT and
    ERASURE_AUDIT, which `ld-spark forget` writes)."""
    return [
        LANDING,
        *map(bronze, TABLES),
        QUARANTINE,
        RECORD_PERSON_IDENTITY,
        SCORED_TUPLES,
        SCORED_PAIRS,
        RECORD_PERSON,
        PERSONS,
        PERSON_KEY_CHANGES,
        REFERRALS,
        COHORT_INDEX,
        COHORTS,
        OFFENCES,
        COURT_CASES,
        EVENTS,
        PANEL,
        SELF_RATED_HEALTH,
        REFERRED,
        ESTIMATES,
        SENSITIVITY,
    ]


def versions(out: str | Path) -> dict[str, int]:
    """Every table of the catalog that exists under OUT_DIR (by its path there), and every
    sensitivity variant of one, -> its latest version."""
    found = {
        t.label: io.delta_version(path(out, t)) for t in tables() if fs.is_dir(fs.join(path(out, t), "_delta_log"))
    }
    # The sensitivity analyses' own tables (variant()), whichever analyses this run made.
    for layer in (LINKAGE, ANALYSIS):
        for analysis in fs.listing(fs.join(out, layer, "sensitivity")):
            for table in fs.listing(analysis.location):
                if fs.is_dir(fs.join(table.location, "_delta_log")):
                    found[f"{layer}/sensitivity/{analysis.name}/{table.name}"] = io.delta_version(table.location)
    return dict(sorted(found.items()))
