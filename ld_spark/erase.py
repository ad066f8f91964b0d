"""Opt-out erasure: the people a list of NHS numbers identifies, gone from every layer of OUT_DIR.

The national data opt-out names people by NHS number. Through linkage those numbers reach all of
a person's records, their police and court records included, which carry no NHS number:

1. the request's numbers are checked (10 digits passing the mod-11 check) and kept only as
   keyed hashes (HMAC under the pseudonymisation key) in `linkage/opt_out`: the numbers
   themselves are never written, logged or shown;
2. the people: every linked person with an identity record whose NHS number hashes into the
   request (record_person_identity), and, in each sensitivity analysis's own linkage, the people
   holding those records (under that linkage's own keys);
3. their rows, deleted (Delta MERGE, which rewrites only the files that hold them):
   - landing, bronze and quarantine: every raw row of theirs in every state (loaded,
     quarantined, duplicate, superseded), found in landing by the record key of one of their
     records, by an event row's parent record, or by an NHS number or PNC ID of theirs;
   - every other table with a person_key column, each linkage's keys in its own tables only;
   - Splink's kept scores (linkage/scores): their identity tuples, and every pair with one of them;
4. each table changed (and, for `forget`, every linkage-layer table) is vacuumed with no
   retention, so the files of its earlier versions (which may still hold the rows) are gone, and
   with them those versions; the linkage layer's tables keep no column statistics in their logs
   (catalog.NO_COLUMN_STATISTICS), so no value survives there;
5. one row in `linkage/erasure_audit`: when, a keyed hash of the request, and counts.

Estimates and results/ are aggregates: they hold no one's rows and change at the next run,
which erases the registered people again (they are still in RAW_DIR until the supplier resends
it without them) right after linkage, before the cohorts onward are made.

Not reached: a quarantined row with no record key, parent, NHS number or PNC ID of theirs (a
court case known by name and date of birth only), and rows of a person none of whose records
carries a number in the request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ld_spark import bronze, catalog, fs, io, normalise, refresh, rekey
from ld_spark.contract import IDENTITY_COLUMNS, KEYS, TABLES, source_name
from ld_spark.errors import InputError
from ld_spark.frames import Transform, union_all
from ld_spark.link import events as link_events
from ld_spark.link import identity
from ld_spark.link.key import hmac_hex, keyed

HASH = "nhs_hash"
# Keyed hashes made with the pseudonymisation key, each with its own prefix, so that no hash
# here equals a person_key or another kind of hash.
OPT_OUT_PREFIX = "opt-out nhs\u001f"
REQUEST_PREFIX = "erasure request\u001f"
KEY_CHECK = "opt-out register key check"
AUDIT_SCHEMA = (
    "erased_at timestamp, request_hmac string, numbers long, people long, records long, tables long, rows long"
)
NOT_AN_NHS_NUMBER = "not an NHS number (10 digits passing the mod-11 check)"


def valid_nhs_number(text: str) -> str | None:
    """normalise.nhs_number on the driver: the ten digits, or None."""
    digits = re.sub(r"[\s-]", "", text)
    if not re.fullmatch(r"[0-9]{10}", digits):
        return None
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits[:9])) % 11
    check = 0 if check == 11 else check
    return digits if check != 10 and check == int(digits[9]) else None


def request_numbers(text: str, source: str) -> list[str]:
    """The request file's NHS numbers, one per line (a first line `nhs_number` is a header; blank
    lines are skipped). A line that is not an NHS number stops the request, naming its line only."""
    numbers = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip().strip('"')
        if not value or (number == 1 and value.lower() == "nhs_number"):
            continue
        valid = valid_nhs_number(value)
        if valid is None:
            raise InputError(f"{source}: line {number}: {NOT_AN_NHS_NUMBER}")
        numbers.append(valid)
    if not numbers:
        raise InputError(f"{source}: no NHS number in the file")
    return sorted(set(numbers))


def record_key_sql(table: str) -> str:
    """The SQL of a contract table's record key, over its contract columns."""
    for contract_table, key, _ in identity.SOURCES.values():
        if contract_table == table:
            return key
    return link_events.EVENT_PARENTS[table][0]


def nhs_hash(key: bytes, number: str) -> str:
    """A registered NHS number's keyed hash (on the driver)."""
    return hmac_hex(key, OPT_OUT_PREFIX + number)


def hashed_nhs(key: bytes, number: Column) -> Column:
    """The same hash of a column of normalised NHS numbers (null stays null)."""
    return keyed(key)(F.concat(F.lit(OPT_OUT_PREFIX), number))


def nhs_column(table: str) -> str | None:
    return next((c for c, kind in IDENTITY_COLUMNS.get(table, {}).items() if kind == "nhs"), None)


def identified_people(records: DataFrame, record_person: DataFrame, hashes: DataFrame, key: bytes) -> DataFrame:
    """(person_key) of every person with an identity record whose NHS number hashes into `hashes`.
    records: identity.records' layout; record_person: (source_table, record_key, person_key)."""
    hashed = records.filter(F.col("nhs").isNotNull()).withColumn(HASH, hashed_nhs(key, F.col("nhs")))
    named = hashed.join(F.broadcast(hashes), on=HASH, how="inner").select("source_table", "record_key")
    return named.join(record_person, on=["source_table", "record_key"], how="inner").select("person_key").distinct()


def doomed_rows(table: str, theirs: DataFrame, pnc_ids: DataFrame, hashes: DataFrame, key: bytes) -> Transform:
    """landing -> (file, line, record_key, row, key) of every landed row of `table` that belongs to
    the erased people (row: the JSON of a parquet row's values, which has no line; key: its key's
    values, KEYS), whatever its state (loaded, quarantined, duplicate, superseded): one of their
    records (by record key), a row of one of their records' children (an event table's parent key),
    a row carrying a registered NHS number, or one carrying one of their PNC IDs.
    theirs: their (source_table, record_key); pnc_ids: their normalised PNC IDs (pnc)."""

    def _(landing: DataFrame) -> DataFrame:
        # A parquet row has no line: it is told apart in its file by all its values.
        row = F.when(F.col(io.LINE).isNull(), F.to_json(io.VALUES))
        of_table = landing.filter(F.col(io.SOURCE_TABLE) == table).withColumn("row", row)
        rows = of_table.select(
            *[F.col(io.VALUES)[c].alias(c) for c in TABLES[table]], io.SOURCE_FILE, io.LINE, io.ROW_FAULT, "row"
        ).withColumn("record_key", F.expr(record_key_sql(table)).cast("string"))

        def records_of(source_table: str) -> DataFrame:
            return F.broadcast(theirs.filter(F.col("source_table") == source_table).select("record_key"))

        found = rows.join(records_of(source_name(table)), on="record_key", how="left_semi")
        if table in link_events.EVENT_PARENTS:
            _, parent_key, parent_table = link_events.EVENT_PARENTS[table]
            parents = records_of(parent_table).withColumnRenamed("record_key", "_parent")
            children = rows.withColumn("_parent", F.expr(parent_key).cast("string"))
            found = found.unionByName(children.join(parents, on="_parent", how="left_semi").drop("_parent"))
        nhs = nhs_column(table)
        if nhs is not None:
            numbered = rows.withColumn(HASH, hashed_nhs(key, normalise.nhs_number(F.col(nhs))))
            found = found.unionByName(numbered.join(F.broadcast(hashes), on=HASH, how="left_semi").drop(HASH))
        pnc = next((c for c, kind in IDENTITY_COLUMNS.get(table, {}).items() if kind == "pnc"), None)
        if pnc is not None:
            with_pnc = rows.withColumn("pnc", normalise.pnc_id(F.col(pnc)))
            found = found.unionByName(with_pnc.join(F.broadcast(pnc_ids), on="pnc", how="left_semi").drop("pnc"))
        return found.select(
            F.col(io.SOURCE_FILE).alias("file"),
            F.col(io.LINE).alias("line"),
            "record_key",
            "row",
            F.array(*[F.col(k) for k in KEYS[table]]).alias("key"),
        ).dropDuplicates()

    return _


class Erased(NamedTuple):
    people: int
    records: int
    rows: dict[str, int]  # table (its path under OUT_DIR) -> rows deleted
    # contract table -> its raw rows deleted from landing, and how the states of the rows left
    # with their keys moved (rekey): what the reconciliation loses to the erasure
    raw: dict[str, tuple[int, dict[str, int]]] = {}
    # bronze rows loaded now that were not before: someone else's row that shared a key with theirs
    promoted: int = 0


def _landed_row_match(table: str) -> str:
    """A MERGE condition on landing for the raw rows doomed_rows found: its file and line, or a
    parquet row (no line) by all its values. An equality on (file, line) first, so the MERGE
    joins by hash, not by comparing every row of a file with every doomed row."""
    return (
        f"t.{io.SOURCE_TABLE} = '{table}' AND t.{io.SOURCE_FILE} = s.file "
        f"AND coalesce(t.{io.LINE}, -1) = coalesce(s.line, -1) "
        f"AND (t.{io.LINE} IS NOT NULL OR to_json(t.{io.VALUES}) = s.row)"
    )


def _merge_delete(spark: SparkSession, target: fs.Location, source: DataFrame, condition: str, name: str) -> int:
    """Delete the target's rows that match a source row; returns how many. Its Spark jobs are
    described as "erase from `name`" (the table's path under OUT_DIR)."""
    from delta.tables import DeltaTable

    with io.job_description(spark, f"erase from {name}"):
        result = DeltaTable.forPath(spark, str(target)).alias("t").merge(source.alias("s"), condition)
        return int(result.whenMatchedDelete().execute().first()["num_deleted_rows"])


def _vacuumed(spark: SparkSession, target: fs.Location, name: str) -> None:
    """The table's files that no current row needs, deleted now: its earlier versions go with them."""
    from delta.tables import DeltaTable

    with io.job_description(spark, f"vacuum {name}"):
        # Its properties from the log (detail() would run a Spark job: about 1 s a table here).
        # The feature is listed while deletion vectors are on, and after they are turned off
        # (its files may still have some): delta.enableDeletionVectors alone would miss those.
        properties = dict(tuple(r) for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{target}`").collect())
        if "delta.feature.deletionVectors" in properties:
            spark.sql(f"REORG TABLE delta.`{target}` APPLY (PURGE)")
        DeltaTable.forPath(spark, str(target)).vacuum(0)


@contextlib.contextmanager
def _vacuum_settings(spark: SparkSession) -> Iterator[None]:
    """Retention 0 allowed (Delta refuses it by default), and the table's folder listed with as
    many tasks as a shuffle has: VACUUM's default, 10,000, took 17 s a table here."""
    settings = {
        "spark.databricks.delta.retentionDurationCheck.enabled": "false",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": spark.conf.get("spark.sql.shuffle.partitions"),
    }
    before = {name: spark.conf.get(name, None) for name in settings}
    for name, value in settings.items():
        spark.conf.set(name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                spark.conf.unset(name)
            else:
                spark.conf.set(name, value)


def _delta_tables(out: fs.Location) -> list[fs.Location]:
    """Every Delta table under OUT_DIR's linkage and analysis layers, the sensitivity analyses'
    own tables too (a table's folder is searched as well, all but its log and its partitions:
    an OUT_DIR written before catalog.SENSITIVITY moved has a table holding their folders)."""
    found, folders = [], [fs.join(out, catalog.LINKAGE), fs.join(out, catalog.ANALYSIS)]
    while folders:
        folder = folders.pop()
        entries = fs.listing(folder)
        if any(e.name == "_delta_log" for e in entries):
            found.append(folder)
        folders += [e.location for e in entries if e.is_dir and not e.name.startswith(("_", ".")) and "=" not in e.name]
    return sorted(found, key=str)


def _linkage_of(out: fs.Location, target: fs.Location) -> str | None:
    """Which linkage a table belongs to: None for the main one, else the sensitivity analysis
    whose own tables (under linkage/ or analysis/sensitivity/<analysis>/) it is one of."""
    parts = str(target)[len(str(out)) :].strip("/").split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "sensitivity" else None


def erase(
    spark: SparkSession,
    out: fs.Location,
    hashes: DataFrame,
    key: bytes,
    threads: int = 1,
    vacuum_linkage: bool = False,
    run_id: str = "ld-spark forget",
) -> Erased:
    """Every row of the people whose NHS numbers hash into `hashes` (HASH), deleted from OUT_DIR,
    and the changed tables vacuumed (see the module's docstring); `threads` tables at a time.
    vacuum_linkage: vacuum every table of the linkage layer too, changed or not (an earlier version
    of an unchanged table may hold them: `ld-spark forget`). run_id: the quarantine's rows made
    again carry it."""
    records = catalog.read(spark, out, catalog.RECORD_PERSON)
    bronze_tables = {t: catalog.read(spark, out, catalog.bronze(t)) for t, _, _ in identity.SOURCES.values()}
    identity_records = identity.records(bronze_tables)
    people = identified_people(
        identity_records, catalog.read(spark, out, catalog.RECORD_PERSON_IDENTITY), hashes, key
    ).cache()
    theirs = records.join(people, on="person_key", how="inner").select("source_table", "record_key").cache()
    their_records = pnc_ids = None
    try:
        # Each linkage's own keys for them: the main one's, and each sensitivity analysis's (its
        # people are other clusters, under other keys, kept to that analysis's own tables).
        keys_in: dict[str | None, set[str]] = {None: {r["person_key"] for r in people.collect()}}
        n_people, n_records = len(keys_in[None]), theirs.count()
        for variant in fs.listing(fs.join(out, catalog.LINKAGE, "sensitivity")):
            linked = fs.join(variant.location, catalog.RECORD_PERSON.name)
            if fs.is_dir(fs.join(linked, "_delta_log")):
                keys = io.read_delta(spark, linked).join(theirs, on=["source_table", "record_key"], how="inner")
                keys_in[variant.name] = {r["person_key"] for r in keys.select("person_key").distinct().collect()}
        # Their identity records, joined once for both: their tuples (whose scores the next run
        # would otherwise carry over) and their PNC IDs (which stay in Spark).
        their_records = (
            identity_records.join(theirs, on=["source_table", "record_key"], how="left_semi")
            .select(identity.UNIQUE_ID, "pnc")
            .cache()
        )
        their_tuples = [r[identity.UNIQUE_ID] for r in their_records.select(identity.UNIQUE_ID).distinct().collect()]
        pnc_ids = their_records.filter(F.col("pnc").isNotNull()).select("pnc").distinct().cache()
        # Their raw rows in every table, in one job (landing pinned: the states are made from it).
        landing_before = catalog.read_latest(spark, out, catalog.LANDING)
        found = union_all(
            landing_before.transform(doomed_rows(table, theirs, pnc_ids, hashes, key)).withColumn("table", F.lit(table))
            for table in TABLES
        ).collect()
    finally:
        for df in (their_records, pnc_ids, theirs, people):
            if df is not None:
                df.unpersist()
    raw_rows: dict[str, list] = {}
    for row in found:
        raw_rows.setdefault(row["table"], []).append((row["file"], row["line"], row["row"], tuple(row["key"])))

    # Landing first: their raw rows go. Bronze and the quarantine are then made again for every
    # key those rows held, from what landing holds now (rekey): a key an erased row shared with
    # someone else's row is classified as if the erased row had never been sent, as it will be
    # when the supplier's extract leaves them out.
    landing_path = catalog.path(out, catalog.LANDING)
    touched: dict[str, DataFrame] = {}
    raw_deleted: dict[str, int] = {}
    for table, rows in raw_rows.items():
        source = spark.createDataFrame([r[:3] for r in rows], "file string, line long, row string")
        raw_deleted[table] = _merge_delete(spark, landing_path, source, _landed_row_match(table), catalog.LANDING.label)
        keys = sorted(set(r[3] for r in rows), key=str)
        touched[table] = spark.createDataFrame(keys, ", ".join(f"`{k}` string" for k in KEYS[table]))
    after = catalog.read_latest(spark, out, catalog.LANDING)
    moved = rekey.reclassified(spark, out, landing_before, after, touched, run_id, threads) if touched else {}
    deleted: dict[str, int] = {}
    changed = set()
    if raw_deleted:
        deleted[f"{catalog.LINKAGE}/{catalog.LANDING.name}"] = sum(raw_deleted.values())
        changed |= {str(landing_path), str(catalog.path(out, catalog.QUARANTINE))}
    for table, m in moved.items():
        changed.add(str(catalog.path(out, catalog.bronze(table))))
        if m.deleted > m.inserted:
            deleted[f"{catalog.LINKAGE}/{catalog.bronze(table).name}"] = m.deleted - m.inserted
    if moved and sum(-m.states[bronze.QUARANTINED] for m in moved.values()) > 0:
        deleted[f"{catalog.LINKAGE}/{catalog.QUARANTINE.name}"] = sum(
            -m.states[bronze.QUARANTINED] for m in moved.values()
        )
    raw = {t: (n, moved[t].states if t in moved else {}) for t, n in raw_deleted.items()}

    deletes = []  # (table, source rows, MERGE condition)
    raw_layer = {str(catalog.path(out, t)) for t in (catalog.LANDING, catalog.QUARANTINE)}
    raw_layer |= {str(catalog.path(out, catalog.bronze(t))) for t in TABLES}
    raw_layer |= {str(catalog.path(out, t)) for t in (catalog.OPT_OUT, catalog.ERASURE_AUDIT)}
    every_table = _delta_tables(out)
    for target in every_table:
        doomed_keys = keys_in.get(_linkage_of(out, target), set())
        if str(target) in raw_layer or not doomed_keys:
            continue
        columns = [c for c in io.read_delta(spark, target).columns if c in ("person_key", "old_person_key")]
        if columns:
            keys = spark.createDataFrame([(k,) for k in sorted(doomed_keys)], "person_key string")
            deletes.append((target, keys, " OR ".join(f"t.{c} = s.person_key" for c in columns)))
    # Splink's kept scores name tuples, not people: theirs go by tuple.
    scored = {
        catalog.SCORED_TUPLES: f"t.{identity.UNIQUE_ID} = s.id",
        catalog.SCORED_PAIRS: "t.id_l = s.id OR t.id_r = s.id",
    }
    for table, condition in scored.items():
        target = catalog.path(out, table)
        if their_tuples and fs.is_dir(fs.join(target, "_delta_log")):
            deletes.append((target, spark.createDataFrame([(t,) for t in their_tuples], "id string"), condition))

    by_table: dict[str, list] = {str(t): [] for t in changed}
    for target, source, condition in deletes:
        by_table.setdefault(str(target), []).append((source, condition))
    if vacuum_linkage:
        linkage_layer = str(fs.join(out, catalog.LINKAGE))
        by_table |= {str(t): by_table.get(str(t), []) for t in every_table if str(t).startswith(linkage_layer)}

    def delete(target: fs.Location, sources: list[tuple[DataFrame, str]]) -> None:
        name = str(target)[len(str(out)) :].lstrip("/")
        n = sum(_merge_delete(spark, target, source, condition, name) for source, condition in sources)
        if n:
            deleted[name] = n
        if n or vacuum_linkage or str(target) in changed:
            _vacuumed(spark, target, name)

    # The scores' scope is set aside while tables change: a stop between the deletes from the
    # scored tuples and from the pairs must not leave a tuple's scores half gone and still used.
    scope = catalog.file(out, catalog.SCORES_FILE)
    kept_scope = fs.read_text(scope) if fs.exists(scope) else None
    fs.delete(scope)
    with _vacuum_settings(spark), ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(lambda item: delete(fs.resolve(item[0]), item[1]), by_table.items()))
    if kept_scope is not None:
        fs.write_text(scope, kept_scope)
    promoted = sum(m.newly_loaded for m in moved.values())
    return Erased(n_people, n_records, dict(sorted(deleted.items())), raw, promoted)


def registered(spark: SparkSession, out: fs.Location, key: bytes) -> DataFrame | None:
    """The opt-out register's hashes (HASH), or None when nobody has opted out. A register made
    under another pseudonymisation key matches no one now: that stops the run, rather than let
    the people on it back in unannounced."""
    register = catalog.read_latest(spark, out, catalog.OPT_OUT)
    if register is None:
        return None
    checks = {r["key_check"] for r in register.select("key_check").distinct().collect()}
    if checks != {hmac_hex(key, KEY_CHECK)}:
        raise InputError(
            f"{catalog.path(out, catalog.OPT_OUT)}: the opt-out register was made under another "
            "pseudonymisation key, so it would match no one: use that key, or run ld-spark forget again "
            "with the opted-out NHS numbers under this one"
        )
    return register.select(HASH).distinct()


def forget(
    spark: SparkSession, out: fs.Location, numbers: list[str], key: bytes, threads: int = 1
) -> tuple[Erased, int]:
    """`ld-spark forget`: the numbers registered (as keyed hashes), their people erased from
    OUT_DIR, every linkage table vacuumed, and the request audited. Returns what was erased and
    how many numbers were new to the register.

    The register is written first: if the erasure stops part-way, the next run (which reads the
    register) erases them. refresh.json is marked while the erasure runs, so that such a run is
    a whole one: landing would no longer hold the rows that bronze still has of them."""
    refresh.mark(out, refresh.FORGETTING)
    hashes = sorted({nhs_hash(key, n) for n in numbers})
    request = spark.createDataFrame([(h,) for h in hashes], f"{HASH} string")
    known = registered(spark, out, key)
    new = request if known is None else request.join(known, on=HASH, how="left_anti")
    new_numbers = new.count()
    if new_numbers:
        entries = new.withColumn("key_check", F.lit(hmac_hex(key, KEY_CHECK)))
        catalog.append(entries.withColumn("registered_at", F.current_timestamp()), out, catalog.OPT_OUT)
    erased = erase(spark, out, request, key, threads, vacuum_linkage=True)
    refresh.erased(out, erased.raw)
    audit = spark.createDataFrame(
        [
            (
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
                hmac_hex(key, REQUEST_PREFIX + "\n".join(numbers)),
                len(numbers),
                erased.people,
                erased.records,
                len(erased.rows),
                sum(erased.rows.values()),
            )
        ],
        AUDIT_SCHEMA,
    )
    catalog.append(audit, out, catalog.ERASURE_AUDIT)
    return erased, new_numbers
