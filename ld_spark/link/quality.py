"""Linkage quality against the generator's truth: pairwise precision, recall and F1 per source.

The computation is one SQL text run on either engine: on an embedded DuckDB in the driver where
the linkage scored there (the records fit in the driver; Spark took 10-25 s a table for what
DuckDB does in about one, most of it planning and compiling shapes no other step uses), and on
Spark otherwise. Its inputs are named `{table}` in the text: Spark's `sql()` takes them as
DataFrames, and DuckDB as Arrow tables under the same names.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.frames import union_all
from ld_spark.link.identity import SOURCES

QUALITY_COLUMNS = ["source_table", "n_records", "n_persons", "precision", "recall", "f1"]

# A truth file may list a record once per row it appeared in (MPI submissions); one is enough.
_LABELLED = """labelled AS (
  SELECT r.source_table, r.record_key, r.person_key, t.true_person
  FROM {record_person} r
  INNER JOIN (SELECT DISTINCT source_table, record_key, person_id AS true_person FROM {truth}) t
    ON r.source_table = t.source_table AND r.record_key = t.record_key
)"""

# Records per (source_table, person_key found, true person): all the pairwise counts need.
_CELLS = """cells AS (
  SELECT source_table, person_key, true_person, count(*) AS n_t FROM labelled
  GROUP BY source_table, person_key, true_person
)"""


def _pairwise(by: tuple[str, ...]) -> str:
    """The rest of a WITH that has defined `cells` (n_t records per source_table, person_key,
    true_person and the `by` columns): its other CTEs, and the SELECT of per source table records,
    people found, and the pairwise precision/recall/F1 of "same person".

    For a table T the pairs judged are every pair of records with at least one in T (the other in
    any table), so a table is scored on both its within-source and its cross-source links. Counts
    come from cluster sizes, never from materialising the pairs. `by`: columns that split the
    cells into separate universes (cohort and period), each scored on its own. A record without
    a person found (or a true one) is in no cluster of them, and makes no pair.
    """
    keys = ", ".join([*by, "source_table"])

    def pairs(cols: list[str]) -> str:
        # A cluster of n records of which n_t are T's: n_t * (n - n_t) pairs across, n_t choose 2 inside.
        within = ", ".join([*by, *cols])
        clustered = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        return f"""SELECT {keys}, sum(n_t * (n - n_t) + n_t * (n_t - 1) / 2) AS pairs FROM (
      SELECT {keys}, n_t, sum(n_t) OVER (PARTITION BY {within}) AS n FROM (
        SELECT {within}, source_table, sum(n_t) AS n_t FROM cells WHERE {clustered}
        GROUP BY {within}, source_table))
    GROUP BY {keys}"""

    def joined(side: str) -> str:
        return " AND ".join(f"c.{k} = {side}.{k}" for k in [*by, "source_table"])

    return f"""predicted AS ({pairs(["person_key"])}),
actual AS ({pairs(["true_person"])}),
correct AS ({pairs(["person_key", "true_person"])}),
q AS (
  SELECT {", ".join(f"c.{k}" for k in [*by, "source_table"])}, c.n_records, c.n_persons,
    coalesce(p.pairs, 0) AS predicted, coalesce(a.pairs, 0) AS actual, coalesce(k.pairs, 0) AS correct
  FROM (SELECT {keys}, sum(n_t) AS n_records, count(DISTINCT person_key) AS n_persons FROM cells GROUP BY {keys}) c
  LEFT JOIN predicted p ON {joined("p")}
  LEFT JOIN actual a ON {joined("a")}
  LEFT JOIN correct k ON {joined("k")}
),
measured AS (
  SELECT *, correct / nullif(predicted, 0) AS precision, correct / nullif(actual, 0) AS recall FROM q
)
SELECT {keys}, n_records, n_persons, precision, recall,
  2 * precision * recall / nullif(precision + recall, 0) AS f1
FROM measured"""


def _rows(sql: str, on: str, tables: dict[str, DataFrame], **values: int) -> list[dict]:
    """The rows of `sql` with its `{name}`s filled: tables by name (DataFrames; on DuckDB, the
    Arrow tables they collect to), values as literals. `on`: "duckdb" or "spark"."""
    if on not in ("spark", "duckdb"):
        raise ValueError(f"linkage quality: no engine {on!r} (spark or duckdb)")
    if on == "spark":
        spark = next(iter(tables.values())).sparkSession
        return [r.asDict() for r in spark.sql(sql, **tables, **values).collect()]
    import duckdb

    con = duckdb.connect()
    try:
        for name, df in tables.items():
            con.register(name, df.toArrow())
        result = con.execute(sql.format(**{name: name for name in tables}, **values))
        columns = [c[0] for c in result.description]
        return [dict(zip(columns, r)) for r in result.fetchall()]
    finally:
        con.close()


def _inputs(record_person: DataFrame, truth: DataFrame) -> dict[str, DataFrame]:
    """The columns the SQL reads, and no more (on DuckDB they travel to the driver)."""
    return {
        "record_person": record_person.select("source_table", "record_key", "person_key"),
        "truth": truth.select("source_table", "record_key", "person_id"),
    }


def _rounded(r: dict) -> dict:
    return {m: None if r[m] is None else round(r[m], 4) for m in ("precision", "recall", "f1")}


def pairwise_rows(record_person: DataFrame, truth: DataFrame, on: str = "spark") -> list[dict]:
    """QUALITY_COLUMNS per source table of record_person (source_table, record_key, person_key),
    scored against truth (source_table, record_key, person_id), unrounded, on `on`'s engine."""
    sql = f"WITH {_LABELLED},\n{_CELLS},\n{_pairwise(())}"
    return _rows(sql, on, _inputs(record_person, truth))


def quality_rows(record_person: DataFrame, truth: DataFrame | None, on: str = "spark") -> list[dict]:
    """The rows of results/linkage_quality.csv (contract section 6), one per identity source;
    precision/recall/F1 blank without truth. `on`: the engine that scores against the truth
    ("duckdb" where the linkage scored there)."""
    if truth is not None:
        rows = {r["source_table"]: r for r in pairwise_rows(record_person, truth, on)}
    else:
        counted = record_person.groupBy("source_table").agg(
            F.count("*").alias("n_records"), F.countDistinct("person_key").alias("n_persons")
        )
        rows = {
            r["source_table"]: {**r.asDict(), "precision": None, "recall": None, "f1": None} for r in counted.collect()
        }
    out = []
    for source in SOURCES:
        r = rows.get(source, {"n_records": 0, "n_persons": 0, "precision": None, "recall": None, "f1": None})
        out.append({"source_table": source, "n_records": r["n_records"], "n_persons": r["n_persons"], **_rounded(r)})
    return out


# The dated identity sources: the date that places a record in a cohort's period. MPI records
# (MHSDS, IAPT) carry no event date and are scored in neither period.
RECORD_DATES = {
    "ld_referrals": "referral_date",
    "hes_ae": "ARRIVALDATE",
    "ndtms.episodes": "REFLD",
    "pnc.offences": "coalesce(offence_date, arrest_date)",
    "hmcts.cases": "coalesce(first_hearing_date, charge_date, offence_date)",
}
COHORT_QUALITY_COLUMNS = ["cohort", "period", *QUALITY_COLUMNS]


def record_dates(bronze: dict[str, DataFrame]) -> DataFrame:
    """(source_table, record_key, record_date) of every dated identity record
    (bronze: contract table -> its bronze table)."""
    parts = [
        bronze[SOURCES[source][0]].select(
            F.lit(source).alias("source_table"),
            F.expr(SOURCES[source][1]).alias("record_key"),
            F.expr(date).cast("date").alias("record_date"),
        )
        for source, date in RECORD_DATES.items()
    ]
    return union_all(parts).filter(F.col("record_date").isNotNull())


# The universe of a cohort x period: every dated record in the period of a member's index month,
# the member being the person found (precision: records wrongly pulled in) or any true person
# among the member's records (recall: records of theirs left out).
_COHORT_CELLS = """dated AS (
  SELECT l.source_table, l.record_key, l.person_key, l.true_person, d.record_date
  FROM labelled l INNER JOIN {dates} d ON l.source_table = d.source_table AND l.record_key = d.record_key
),
members AS (SELECT person_key, cohort, index_date FROM {cohort_index}),
true_members AS (
  SELECT DISTINCT d.true_person, m.cohort, m.index_date
  FROM dated d INNER JOIN members m ON d.person_key = m.person_key
),
universe AS (
  SELECT d.*, m.cohort, m.index_date FROM dated d INNER JOIN members m ON d.person_key = m.person_key
  UNION ALL
  SELECT d.*, t.cohort, t.index_date FROM dated d INNER JOIN true_members t ON d.true_person = t.true_person
),
placed AS (
  SELECT DISTINCT source_table, record_key, person_key, true_person, cohort,
    CASE WHEN rel BETWEEN {pre_from} AND {pre_to} THEN 'pre' WHEN rel BETWEEN {post_from} AND {post_to} THEN 'post'
    END AS period
  FROM (
    SELECT *, year(record_date) * 12 + month(record_date) - (year(index_date) * 12 + month(index_date)) AS rel
    FROM universe
  )
),
cells AS (
  SELECT cohort, period, source_table, person_key, true_person, count(*) AS n_t FROM placed
  WHERE period IS NOT NULL GROUP BY cohort, period, source_table, person_key, true_person
)"""


def cohort_quality_rows(
    record_person: DataFrame,
    truth: DataFrame,
    cohort_index: DataFrame,
    dates: DataFrame,
    pre: tuple[int, int],
    post: tuple[int, int],
    on: str = "spark",
) -> list[dict]:
    """Linkage quality per cohort and period (GUILD: missed links that differ between the 2013/14
    and the 2017 records bias a before/after contrast): pairwise precision, recall and F1 per
    source within each cohort x period's universe (_COHORT_CELLS), on `on`'s engine.

    cohort_index: person_key, cohort, index_date; dates: record_dates().
    """
    sql = f"WITH {_LABELLED},\n{_COHORT_CELLS},\n{_pairwise(('cohort', 'period'))}"
    tables = _inputs(record_person, truth) | {
        "cohort_index": cohort_index.select("person_key", "cohort", "index_date"),
        "dates": dates.select("source_table", "record_key", "record_date"),
    }
    months = {"pre_from": pre[0], "pre_to": pre[1], "post_from": post[0], "post_to": post[1]}
    rows = _rows(sql, on, tables, **months)
    order = {source: i for i, source in enumerate(SOURCES)}
    return [
        {**{k: r[k] for k in ("cohort", "period", "source_table", "n_records", "n_persons")}, **_rounded(r)}
        for r in sorted(rows, key=lambda r: (r["cohort"], r["period"] != "pre", order.get(r["source_table"], 99)))
    ]
