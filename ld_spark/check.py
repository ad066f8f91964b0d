"""`ld-spark check --raw RAW_DIR`: an extract folder against the contract, without running the job.

What a data manager runs before submitting an extract. First the structural checks a run makes
before it writes anything (every table's folder and files, CSV headers, parquet column types),
all of them rather than the first failure. Then every row is landed and classified by bronze's
own rules in memory, nothing written: rows per table, the share each state takes (loaded,
quarantined, duplicate, superseded), each quarantine rule's rows, and the reconciliation against
the raw files that a run makes.

The folder is unusable when a run would stop on it (a structural fault, rows that do not
reconcile) or when a table would quarantine more than `check.max_quarantined_share` of its rows:
the reasons are printed one per line and the command exits 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ld_spark import bronze, io
from ld_spark.contract import TABLES
from ld_spark.errors import InputError
from ld_spark.frames import union_all


@dataclass
class Findings:
    states: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> read and rows per state
    rules: list[dict] = field(default_factory=list)  # table, rule, column, rows
    problems: list[str] = field(default_factory=list)  # why the folder is unusable, one line each


def rule_rows(classified: dict[str, DataFrame]) -> DataFrame:
    """table, rule, column, rows: the quarantined rows breaking each rule (a row breaking two
    rules counts under both)."""
    broken = union_all(
        df.filter(F.col(bronze.STATUS) == bronze.QUARANTINED).select(
            F.lit(table).alias("table"), F.explode(bronze.FAILURES).alias("failure")
        )
        for table, df in classified.items()
    )
    return (
        broken.select("table", *[F.split("failure", ":")[i].alias(c) for i, c in enumerate(("rule", "column"))])
        .groupBy("table", "rule", "column")
        .agg(F.count(F.lit(1)).alias("rows"))
    )


def examine(spark: SparkSession, raw: str | Path, max_quarantined_share: float) -> Findings:
    """Structure, then (for the tables whose structure holds) states, rules and reconciliation."""
    layouts, faults = io.check_tables(spark, raw)
    found = Findings(problems=[str(f) for f in faults])
    if not layouts:
        return found
    landing = io.read_landing(spark, layouts).persist(StorageLevel.MEMORY_AND_DISK)
    # Classified once, then counted twice (states, and rows per rule).
    classified = {
        t: io.landed(landing, t).transform(bronze.classify(t)).persist(StorageLevel.MEMORY_AND_DISK) for t in layouts
    }
    try:
        states = bronze.every_state_count(classified)
        found.rules = sorted(
            (r.asDict() for r in rule_rows(classified).collect()), key=lambda r: (r["table"], -r["rows"], r["rule"])
        )
    finally:
        for df in [*classified.values(), landing]:
            df.unpersist()
    read = io.raw_record_counts(spark, layouts)
    for table in layouts:
        try:
            found.states[table] = bronze.reconciled(table, read[table], states[table])
        except InputError as err:
            found.problems.append(str(err))
            found.states[table] = {"read": read[table], **{s: states[table][s] for s in bronze.STATES}}
        counts = found.states[table]
        if counts["read"] == 0:
            found.problems.append(f"table {table}: its files hold no rows")
        elif counts[bronze.QUARANTINED] > max_quarantined_share * counts["read"]:
            found.problems.append(
                f"table {table}: {counts[bronze.QUARANTINED]:,d} of {counts['read']:,d} rows would be quarantined "
                f"(more than {max_quarantined_share:.0%}); see its rules above"
            )
    return found


def _share(n: int, of: int) -> str:
    return f"{100 * n / of:5.1f}%" if of else "    -"


def report(found: Findings) -> list[str]:
    """The printed table: rows per table and state, then each quarantine rule's rows."""
    width = max(len(t) for t in TABLES)
    lines = []
    if found.states:
        lines.append(f"{'table':<{width}}  {'rows':>10}  " + "  ".join(f"{s:>11}" for s in bronze.STATES))
        for table, c in found.states.items():
            lines.append(
                f"{table:<{width}}  {c['read']:>10,d}  "
                + "  ".join(f"{_share(c[s], c['read']):>11}" for s in bronze.STATES)
            )
    if found.rules:
        lines += ["", "quarantine rules (rows breaking each; a row can break several):"]
        rule_width = max(len(r["rule"]) + 1 + len(r["column"]) for r in found.rules)
        for r in found.rules:
            rows = found.states[r["table"]]["read"]
            lines.append(
                f"  {r['table']:<{width}}  {r['rule'] + ':' + r['column']:<{rule_width}} {r['rows']:>8,d}  {_share(r['rows'], rows)}"
            )
    return lines
