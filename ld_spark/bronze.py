"""Bronze: landed rows to typed, validated, deduplicated contract tables.

Every landed row ends in exactly one state, so the counts reconcile to the row:
    read = loaded + quarantined + exact duplicates removed + superseded submissions (+ erased:
    rows of opted-out people deleted since, ld_spark.erase)
- duplicate:   an exact copy (every contract column equal) of an earlier row, a resubmission;
- quarantined: it breaks a rule (malformed row, missing key or required value, unparseable
               date or number, code outside its list, a key reused with different content);
               the rule is kept;
- superseded:  MHSDS/IAPT only, an earlier monthly submission of a record sent again later;
- loaded:      everything else, typed, with identity values normalised.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ld_spark import normalise
from ld_spark.contract import (
    CODES,
    DATE,
    IDENTITY_COLUMNS,
    INT,
    KEYS,
    MONTHLY_SUBMISSION_TABLES,
    ONWARD_REFERRALS,
    REQUIRED,
    TABLES,
    TYPES,
    YN,
)
from ld_spark.errors import InputError
from ld_spark.frames import Transform, union_all
from ld_spark.io import LINE, ROW_FAULT, SOURCE_FILE

STATUS = "_status"
FAILURES = "_failures"
LOADED, QUARANTINED, DUPLICATE, SUPERSEDED = "loaded", "quarantined", "duplicate", "superseded"
STATES = (LOADED, QUARANTINED, DUPLICATE, SUPERSEDED)
# Rows of opted-out people deleted from landing (ld_spark.erase): counted, in no state.
ERASED = "erased"
RECONCILIATION_COLUMNS = ["source_table", "read", *STATES, ERASED]
# A date outside these years is a slip of a digit (2107 for 2017), not an event: quarantined
# (rule implausible_date), so that it is seen rather than falling silently outside every window.
# Dates of birth are identity values, normalised instead (normalise.dob).
DATE_RANGE = (dt.date(1900, 1, 1), dt.date(2099, 12, 31))


def _rule(failed: Column, rule: str, column: str) -> Column:
    return F.when(failed, F.lit(f"{rule}:{column}"))


def row_rules(table: str) -> list[Column]:
    """One expression per rule: the rule's name where the row breaks it, else null."""
    identity = IDENTITY_COLUMNS.get(table, {})
    rules = [_rule(F.col(ROW_FAULT).isNotNull(), "malformed_row", "*")]
    rules += [_rule(F.col(k).isNull(), "missing_key", k) for k in KEYS[table]]
    rules += [_rule(F.col(c).isNull(), "missing_value", c) for c in REQUIRED.get(table, [])]
    for column, kind in TYPES[table].items():
        if column in identity:
            continue  # identity values are normalised, never a reason to lose the row
        value = F.col(column)
        if kind == DATE:
            parsed = normalise.iso_date(value)
            rules.append(_rule(value.isNotNull() & parsed.isNull(), "unparseable_date", column))
            implausible = parsed.isNotNull() & ~parsed.between(F.lit(DATE_RANGE[0]), F.lit(DATE_RANGE[1]))
            rules.append(_rule(implausible, "implausible_date", column))
        elif kind == INT:
            rules.append(_rule(value.isNotNull() & value.try_cast("int").isNull(), "not_an_integer", column))
        elif kind == YN:
            rules.append(_rule(value.isNotNull() & ~value.isin("Y", "N"), "not_y_or_n", column))
    for column, codes in CODES.get(table, {}).items():
        rules.append(
            _rule(F.col(column).isNotNull() & ~F.col(column).isin(*sorted(codes)), "code_outside_list", column)
        )
    if table == "ld_referrals":
        items = F.split(F.col("onward_referrals"), ";")
        unknown = F.exists(items, lambda x: ~x.isin(*ONWARD_REFERRALS))
        rules.append(_rule(F.col("onward_referrals").isNotNull() & unknown, "code_outside_list", "onward_referrals"))
        needs = F.col("mh_needs").try_cast("int")
        rules.append(_rule(needs.isNotNull() & ~needs.between(0, 5), "out_of_range", "mh_needs"))
    return rules


def classify(table: str) -> Transform:
    """Give every landed row its state (and, if quarantined, the rules it broke)."""
    columns = TABLES[table]
    well_formed = F.col(ROW_FAULT).isNull()
    # Files in the order of their names (a table's folder is flat, so a name is unique in it),
    # not of their paths: a raw folder that moves between runs (a month's delivery in a folder of
    # its own) keeps the order its earlier rows were classified in.
    file_name = F.element_at(F.split(F.col(SOURCE_FILE), "/"), -1)
    first_seen = (
        Window.partitionBy(*columns, well_formed)
        .orderBy(file_name, LINE)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    # A malformed row's values are not all the row held (a csv.Error leaves none of them), so
    # it is nobody's copy: two of them with equal values are both quarantined, never a duplicate.
    copy = F.when(well_formed, F.row_number().over(first_seen)).otherwise(1)

    def _(landed: DataFrame) -> DataFrame:
        key = KEYS[table]
        # Rows are grouped by key once: both windows below (exact copies, and versions of a key)
        # group within a key, so neither needs a shuffle of its own.
        df = landed.repartition(*key).withColumn("_copy", copy)
        df = df.withColumn(FAILURES, F.filter(F.array(*row_rules(table)), lambda r: r.isNotNull()))
        if table in MONTHLY_SUBMISSION_TABLES:
            # The latest UniqMonthID of a record is its truth; earlier submissions are superseded.
            df = df.withColumn("_valid", (F.col("_copy") == 1) & (F.size(FAILURES) == 0))
            latest = Window.partitionBy(*key, "_valid").orderBy(
                F.col("UniqMonthID").try_cast("int").desc_nulls_last(), file_name.desc(), F.col(LINE).desc()
            )
            df = df.withColumn("_rank", F.when(F.col("_valid"), F.row_number().over(latest))).drop("_valid")
            conflict = F.lit(False)
        else:
            # A key reused with different content cannot be resolved here: quarantine every version.
            versions = Window.partitionBy(*key).rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
            distinct_rows = F.sum(F.when(F.col("_copy") == 1, 1).otherwise(0)).over(versions)
            conflict = F.col(key[0]).isNotNull() & (distinct_rows > 1)
            df = df.withColumn("_rank", F.lit(1))
        df = df.withColumn(
            FAILURES,
            F.when(
                conflict & (F.col("_copy") == 1), F.concat(F.col(FAILURES), F.array(F.lit(f"duplicate_key:{key[0]}")))
            ).otherwise(F.col(FAILURES)),
        )
        status = (
            F.when(F.col("_copy") > 1, DUPLICATE)
            .when(F.size(FAILURES) > 0, QUARANTINED)
            .when(F.col("_rank") > 1, SUPERSEDED)
            .otherwise(LOADED)
        )
        return df.withColumn(STATUS, status).drop("_copy", "_rank")

    return _


def typed(table: str) -> Transform:
    """Loaded rows with contract types and normalised identity values (the bronze table)."""
    identity = IDENTITY_COLUMNS.get(table, {})
    types = TYPES[table]

    def cast(column: str) -> Column:
        value = F.col(column)
        if column in identity:
            value = normalise.BY_KIND[identity[column]](value)
            return value.alias(column)
        kind = types.get(column)
        if kind == DATE:
            return normalise.iso_date(value).alias(column)
        if kind == INT:
            return value.try_cast("int").alias(column)
        if kind == YN:
            return (value == "Y").alias(column)
        return value.alias(column)

    def _(classified: DataFrame) -> DataFrame:
        loaded = classified.filter(F.col(STATUS) == LOADED)
        return loaded.select(*[cast(c) for c in TABLES[table]], SOURCE_FILE, LINE)

    return _


def key_values(table: str) -> Transform:
    """Landed rows -> the distinct keys they hold (a null part included: a row without a key is
    classified with the others that lack it)."""
    return lambda landed: landed.select(*KEYS[table]).distinct()


def holding(table: str, keys: DataFrame) -> Transform:
    """Landed rows whose key is one of `keys` (null-safe: a missing key part matches a missing one).

    A row's state depends only on the rows that share its key (copies share every column, and
    supersession and key conflicts are decided within a key), so classifying these rows gives
    them the states a classification of the whole table would: this is what lets an incremental
    run reclassify only the keys new rows touch."""
    on = [F.col(f"_l.{k}").eqNullSafe(F.col(f"_k.{k}")) for k in KEYS[table]]
    return lambda landed: landed.alias("_l").join(keys.alias("_k"), on, "left_semi")


def changed_states(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """How the states of some keys' rows moved (state_counts after new rows came, less before)."""
    return {state: after.get(state, 0) - before.get(state, 0) for state in STATES}


def constraints(table: str) -> dict[str, str]:
    """The bronze table's CHECK constraints: every loaded row has its key and its required values
    (contract.REQUIRED), and each date that is not a date of birth lies in DATE_RANGE (a row
    breaking either is quarantined, so a write that breaks one is a bug, and fails rather than
    commits)."""
    identity = IDENTITY_COLUMNS.get(table, {})
    checks = {f"{c.lower()}_present": f"`{c}` IS NOT NULL" for c in [*KEYS[table], *REQUIRED.get(table, [])]}
    low, high = DATE_RANGE
    for column, kind in TYPES[table].items():
        if kind == DATE and column not in identity:
            checks[f"{column.lower()}_plausible"] = (
                f"`{column}` IS NULL OR `{column}` BETWEEN DATE'{low.isoformat()}' AND DATE'{high.isoformat()}'"
            )
    return checks


def quarantined(table: str, run_id: str) -> Transform:
    """Quarantined rows with their first rule, all rules, where they came from (file and line) and
    the row's values as landed."""

    def _(classified: DataFrame) -> DataFrame:
        rows = classified.filter(F.col(STATUS) == QUARANTINED)
        return rows.select(
            F.lit(table).alias("source_table"),
            F.split(F.col(FAILURES)[0], ":")[0].alias("rule"),
            F.split(F.col(FAILURES)[0], ":")[1].alias("column"),
            F.array_join(F.col(FAILURES), ";").alias("rules"),
            F.col(SOURCE_FILE).alias("source_file"),
            F.col(LINE).alias("line"),
            F.col(ROW_FAULT).alias("row_fault"),
            F.to_json(F.struct(*TABLES[table])).alias("record"),
            F.lit(run_id).alias("run_id"),
        )

    return _


def reconciled(table: str, read: int, states: dict[str, int], erased: int = 0) -> dict[str, int]:
    """The table's reconciliation row, or InputError if it does not balance.

    `read` is counted from the raw files apart from the parser (io.raw_record_counts), so a row
    lost or invented anywhere between the raw bytes and the bronze states stops the run here.
    `erased`: rows of opted-out people deleted from landing (ld_spark.erase), in no state since.
    """
    counts = {state: int(states.get(state, 0)) for state in STATES}
    if read != sum(counts.values()) + erased:
        raise InputError(
            f"table {table}: {read} records in the raw files but {sum(counts.values()) + erased} rows "
            f"accounted for ("
            + ", ".join(f"{s} {n}" for s, n in {**counts, ERASED: erased}.items())
            + "): rows were lost or invented on the way to bronze"
        )
    return {"read": read, **counts, ERASED: erased}


def less_erased(
    reconciliation: dict[str, dict[str, int]], raw: dict[str, tuple[int, dict[str, int]]]
) -> dict[str, dict[str, int]]:
    """The reconciliation after an erasure (erase.Erased.raw: contract table -> rows deleted from
    landing, and how the states of the rows of their keys moved): the rows counted as erased, in
    no state any more, and the states of the rest as they are now."""
    out = {table: dict(counts) for table, counts in reconciliation.items()}
    for table, (rows, states) in raw.items():
        counts = {ERASED: 0, **out[table]}
        moved = {s: counts[s] + states.get(s, 0) for s in STATES}
        out[table] = reconciled(table, counts["read"], moved, counts[ERASED] + rows)
    return out


def state_counts(classified: DataFrame) -> dict[str, int]:
    """Rows per state, plus `read` (their sum): one table's line of the reconciliation."""
    return every_state_count({"table": classified})["table"]


def every_state_count(classified: dict[str, DataFrame]) -> dict[str, dict[str, int]]:
    """state_counts of every table (classified: table -> classify's output), in one Spark job."""
    rows = union_all(df.select(F.lit(table).alias("table"), STATUS) for table, df in classified.items())
    counts = {(r["table"], r[STATUS]): r["count"] for r in rows.groupBy("table", STATUS).count().collect()}
    states = {table: {state: int(counts.get((table, state), 0)) for state in STATES} for table in classified}
    return {table: {"read": sum(out.values()), **out} for table, out in states.items()}


def quarantine_key(table: str) -> Column:
    """A quarantine row's key as held in its `record` (JSON of its text): a JSON array of the key's
    values, null where a part is missing; key_signature gives the same for landed rows."""
    return F.to_json(F.array(*[F.get_json_object("record", f"$.{k}") for k in KEYS[table]]))


def key_signature(table: str) -> Column:
    return F.to_json(F.array(*[F.col(k) for k in KEYS[table]]))


def quarantine(classified: dict[str, DataFrame], run_id: str) -> DataFrame:
    """Every table's quarantined rows in one table (classified: contract table -> classify's output)."""
    return union_all(df.transform(quarantined(table, run_id)) for table, df in classified.items())
