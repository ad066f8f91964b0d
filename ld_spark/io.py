"""All reading of raw extracts and reading/writing of Delta tables goes through here."""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ld_spark import fs
from ld_spark.contract import DATE, IDENTITY_COLUMNS, INT, TABLES, TYPES, YN, ZERO_PADDED
from ld_spark.errors import InputError

SOURCE_FILE = "_source_file"
COMMIT_FILE = re.compile(r"\d{20}\.json")
# Spark writes these beside its output files: a table folder copied from a Spark job holds them.
SPARK_MARKERS = re.compile(r"_SUCCESS|\..+\.crc")


def raw_files(raw_root: str | Path, table: str) -> tuple[str, list[fs.Location]]:
    """("csv" | "parquet", the table's files), or InputError naming what is wrong.

    A sub-folder, or a file whose name starts with `.` or `_` (hidden from Spark's and Hadoop's
    readers), is an error rather than skipped: rows in it would be lost without a word. Only
    the markers Spark writes beside its output (`_SUCCESS` and `.<name>.crc`) are tolerated.
    """
    folder = fs.join(raw_root, table)
    if not fs.is_dir(folder):
        raise InputError(f"table {table}: directory {folder} is missing")
    entries = fs.listing(folder)
    stray = [e for e in entries if e.is_dir or (e.name.startswith((".", "_")) and not SPARK_MARKERS.fullmatch(e.name))]
    if stray:
        what = "is a sub-folder" if stray[0].is_dir else "is hidden (its name starts with . or _)"
        raise InputError(
            f"table {table}: {stray[0].location} {what}; a table's folder holds only its CSV or parquet files"
            + (f" (and {len(stray) - 1} more)" if len(stray) > 1 else "")
        )
    files = [e for e in entries if not SPARK_MARKERS.fullmatch(e.name)]
    if not files:
        raise InputError(f"table {table}: directory {folder} holds no files")
    kinds = {_suffix(e.name) for e in files}
    if kinds == {".csv"}:
        return "csv", [e.location for e in files]
    if kinds == {".parquet"}:
        return "parquet", [e.location for e in files]
    odd = next(e for e in files if _suffix(e.name) not in (".csv", ".parquet"))
    raise InputError(f"table {table}: file {odd.location} is not CSV or parquet (all files must be one or the other)")


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def raw_bytes(raw_root: str | Path, parquet_as_csv: float) -> float | None:
    """The bytes of a local extract's table files (the contract's tables; not `_truth/`), a
    parquet file's counted `parquet_as_csv` times; read before a session exists, to size its JVM.
    None for a missing folder, or one on an object store (Hadoop's file systems start with the JVM)."""
    where = fs.resolve(raw_root)
    if not isinstance(where, Path) or not where.is_dir():
        return None
    return sum(
        e.size * (parquet_as_csv if _suffix(e.name) == ".parquet" else 1)
        for table in TABLES
        for e in fs.listing(fs.join(where, table))
        if not e.is_dir
    )


def _header_fields(first_line: bytes) -> list[str]:
    """The header line's names (a UTF-8 byte-order mark, as spreadsheet exports write, is allowed)."""
    return next(csv.reader([first_line.decode("utf-8-sig")]), [])


def csv_header(table: str, path: fs.Location) -> list[str]:
    """The header row: its first line, checked to be UTF-8 and to name each column once."""
    if fs.size(path) == 0:
        raise InputError(f"table {table}: file {path} is empty (not even a header row)")
    first = fs.first_line(path)  # the header line alone: a bad byte further down is a row's fault
    try:
        header = _header_fields(first)
    except UnicodeDecodeError as err:
        raise InputError(f"table {table}: file {path}: row 1 (header) is not UTF-8 ({err.reason})") from None
    # Only contract columns: a repeated extra name (blank names of a spreadsheet's empty
    # trailing columns, say) is never read, while a repeated contract column has two values.
    repeated = next((c for c in TABLES[table] if header.count(c) > 1), None)
    if repeated is not None:
        raise InputError(
            f"table {table}: file {path}: column {repeated} appears {header.count(repeated)} times "
            f"in the header (row 1)"
        )
    return header


# The Spark types whose text (landing casts every column to string) a contract column of each
# kind can use; anything else (float, timestamp, boolean, binary, struct, array, ...) reads as
# text that would quarantine every row, or as garbage. A double is read for what it holds, in
# any column: pandas writes an integer column that has a blank as double (120.0 for 120), and a
# column blank in every row of a file as double too; a number in a date or Y/N column is text
# that bronze quarantines its row for.
_WHOLE_NUMBERS = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
READABLE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((T.StringType, *_WHOLE_NUMBERS, T.DoubleType), "string or whole numbers"),
    INT: ((T.StringType, *_WHOLE_NUMBERS, T.DoubleType), "string or whole numbers"),
    DATE: ((T.StringType, T.DateType, T.DoubleType), "string or date"),
    YN: ((T.StringType, T.DoubleType), "string"),
}


def whole_number(type_name: str) -> bool:
    """A parquet column type (Spark's simple string) of whole numbers: an integer type, or a
    decimal without a scale (a database's NUMBER(n))."""
    integers = {t().simpleString() for t in _WHOLE_NUMBERS}  # tinyint, smallint, int, bigint
    return type_name in integers or re.fullmatch(r"decimal\(\d+,0\)", type_name) is not None


def parquet_type_fault(kind: str, data_type: T.DataType) -> str | None:
    """Why a parquet column of `data_type` cannot hold a contract column of `kind`, or None."""
    types, wanted = READABLE_TYPES[kind]
    if isinstance(data_type, (T.NullType, *types)):  # NullType: null in every row of the file
        return None
    if T.LongType in types and whole_number(data_type.simpleString()):
        return None  # NUMBER(n) of database exports: decimal(n,0), no decimal point in their text
    return f"is {data_type.simpleString()}, which cannot be read as the contract's {kind} ({wanted})"


def check_tables(spark: SparkSession, raw_root: str | Path) -> tuple[dict, list[InputError]]:
    """check_columns on every contract table: the layouts of the tables that pass, and every
    table's fault (a run stops on the first; `ld-spark check` reports them all)."""
    layouts, faults = {}, []
    for table in TABLES:
        try:
            layouts[table] = check_columns(spark, raw_root, table)
        except InputError as err:
            faults.append(err)
    return layouts, faults


def check_columns(
    spark: SparkSession, raw_root: str | Path, table: str
) -> tuple[str, dict[tuple[str, ...], list[fs.Location]]]:
    """Fail before anything is written if a file lacks a contract column, names one twice (CSV)
    or holds one in a type it cannot be read as (parquet: the schema only is read, no rows).

    Returns the format and the files grouped by header (CSV; column order may differ between
    files) or by schema (parquet: a column typed differently in two files needs two scans).
    """
    kind, files = raw_files(raw_root, table)
    expected = TABLES[table]
    groups: dict[tuple[str, ...], list[fs.Location]] = {}
    for path in files:
        schema = spark.read.parquet(str(path)).schema if kind == "parquet" else None  # footers only
        columns = schema.fieldNames() if schema is not None else csv_header(table, path)
        missing = [c for c in expected if c not in columns]
        if missing:
            raise InputError(
                f"table {table}: file {path} lacks column {missing[0]}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        if schema is None:
            groups.setdefault(tuple(columns), []).append(path)
            continue
        for column in expected:
            fault = parquet_type_fault(TYPES[table].get(column, "str"), schema[column].dataType)
            if fault:
                raise InputError(f"table {table}: file {path}: column {column} {fault}")
        groups.setdefault(tuple(f"{c}:{schema[c].dataType.simpleString()}" for c in expected), []).append(path)
    return kind, groups


LINE = "_line"
ROW_FAULT = "_row_fault"
BATCH_ROWS = 20_000
# No contract column holds free text, so a quoted line break is rare and short; a quote still
# open this many lines on was left open by mistake (and the lines held back stay bounded).
MAX_RECORD_LINES = 100


def _quote_open_at_end(line: bytes, in_quote: bool) -> tuple[bool, bool]:
    """(inside a quoted field at the end of `line`, a quote closed a field without a comma or the
    line end after it), reading as Python's csv module does: a quote opens a field only at the
    field's start, `""` inside one is a quote character, text after a closing quote is kept."""
    position, bad_close = 0, False
    while True:
        if in_quote:
            end = line.find(b'"', position)
            if end < 0:
                return True, bad_close
            if line[end + 1 : end + 2] == b'"':
                position = end + 2
                continue
            in_quote, position = False, end + 1
            bad_close = bad_close or line[position : position + 1] not in (b",", b"\r", b"\n", b"")
        if line[position : position + 1] == b'"':  # only ever true at the start of the line
            in_quote, position = True, position + 1
            continue
        opening = line.find(b',"', position)
        if opening < 0:
            return False, bad_close
        in_quote, position = True, opening + 2


def csv_records(lines: Iterable[bytes], first_line: int = 2) -> Iterator[tuple[int, bytes, str | None]]:
    """Split a CSV file's lines (bytes, each with its line end) into records:
    (the line the record starts on, its bytes, a fault of the split or None).

    A record ends at a line end outside quotes; a blank line is no record (as Spark and pandas
    read it). A quote still open at the end of the file, MAX_RECORD_LINES lines on, or closed
    on a later line by a quote with no comma or line end after it (the opening quote of a later
    field, most likely) was left open by mistake: the record is then its first line alone, with
    the fault, and the next record starts on the line after. So one stray quote costs one row.
    This split is the row count too (`count_records`): each record is exactly one landed row.
    """
    held: deque[bytes] = deque()  # lines read ahead past a quote left open, to be split again
    source = iter(lines)
    line = first_line
    while True:
        first = held.popleft() if held else next(source, None)
        if first is None:
            return
        if not first.strip(b"\r\n"):
            line += 1
            continue
        in_quote = b'"' in first and _quote_open_at_end(first, False)[0]
        record = [first]
        while in_quote and len(record) < MAX_RECORD_LINES:
            following = held.popleft() if held else next(source, None)
            if following is None:
                break
            record.append(following)
            in_quote, bad_close = _quote_open_at_end(following, True)
            if bad_close:
                in_quote = True
                break
        if in_quote:
            held.extendleft(reversed(record[1:]))
            yield line, first, f"quote opened on line {line} is not closed"
            line += 1
        else:
            yield line, b"".join(record), None
            line += len(record)


def count_records(handle: BinaryIO) -> int:
    """Data records in one CSV file (an open binary handle at its start), counted from its
    bytes (header line excluded)."""
    handle.readline()
    return sum(1 for _ in csv_records(handle))


# The white space around a field that goes (blank = null; a field of spaces is blank): ASCII's,
# as Java's regex \s, so that CSV and parquet fields are read alike.
BLANKS = " \t\n\r\f\v"


def _parsed(record: bytes, positions: list[int], width: int, split_fault: str | None) -> tuple[list, str | None]:
    """One record's contract values and its faults (every one, `; `-joined), or None.

    Bytes that are not UTF-8 become U+FFFD whatever else is wrong with the row, so the values
    of a quarantined row are always text that can be written.
    """
    record = record.rstrip(b"\r\n")
    try:
        text, not_utf8 = record.decode("utf-8"), None
    except UnicodeDecodeError:
        text, not_utf8 = record.decode("utf-8", "replace"), "bytes that are not UTF-8"
    try:
        row = next(csv.reader([text]), [])
        # Blank = null (contract), and a field of spaces is blank: fixed-width exports pad their
        # fields, and " D02" is the code D02, "  " no date at all.
        values = [(row[i].strip(BLANKS) or None) if i < len(row) else None for i in positions]
        misshapen = None if len(row) == width else f"row has {len(row)} fields, header has {width}"
    except csv.Error as err:  # a field over csv.field_size_limit(), a carriage return outside quotes
        values, misshapen = [None] * len(positions), f"malformed CSV ({err})"
    faults = [f for f in (split_fault, misshapen, not_utf8) if f]
    return values, "; ".join(faults) or None


def text_widths(table: str) -> dict[str, int]:
    """contract.ZERO_PADDED for values written as text: its codes, not its NHS numbers. A number
    type cannot hold an NHS number's leading zero, but nine digits of text are one that lost a
    digit (England's start 4, 6 or 7), and padded they could pass the check as someone else's."""
    nhs = {c for c, kind in IDENTITY_COLUMNS.get(table, {}).items() if kind == "nhs"}
    return {c: w for c, w in ZERO_PADDED.get(table, {}).items() if c not in nhs}


def zero_padded(value: str | None, width: int | None) -> str | None:
    """A code the contract writes with leading zeros, written without them (a spreadsheet's or a
    writer's number: face-to-face `01` as `1`), padded back to its width: digits only, so a
    fraction, a sign or a letter keeps its text for bronze's rules to judge."""
    if value is None or width is None or not (value.isascii() and value.isdigit()) or len(value) >= width:
        return value
    return value.zfill(width)


def _csv_rows(handle: BinaryIO, columns: list[str], widths: dict[str, int] | None = None):
    """Rows of one CSV file (an open binary handle at its start) as contract-ordered string
    tuples with their line and any fault; a zero-padded code (widths: column -> its width,
    contract.ZERO_PADDED) written short is padded back (zero_padded).

    Our own split into records (`csv_records`) and Python's csv module on each record (not
    Spark's reader) so that every record keeps its line number, a malformed one (wrong field
    count, bytes that are not UTF-8, a quote left open, a field over the csv module's size
    limit) is reported rather than silently nulled, and none costs the records after it.
    """
    header = _header_fields(handle.readline())
    positions = [header.index(c) for c in columns]
    padded = [(i, w) for i, c in enumerate(columns) if (w := (widths or {}).get(c))]
    for line, record, split_fault in csv_records(handle):
        values, fault = _parsed(record, positions, len(header), split_fault)
        for i, width in padded:
            values[i] = zero_padded(values[i], width)
        yield values, line, fault


def csv_handles(spark: SparkSession, files: list[tuple[str, str]], parse, schema) -> DataFrame:
    """`parse(table, path, handle)` (an iterator of pandas frames of `schema`) over every CSV
    file, (table, path) pairs, in one Spark job. A local file (the same path on every node) is
    opened and streamed where its task runs; a file under a URL (s3a://, hdfs://, ...) is read
    whole through Hadoop by Spark's binaryFile source on the executor, so one such file must
    fit in a task's memory (and binaryFile's 2 GiB limit): split a larger extract into files."""
    local = [(t, p) for t, p in files if not fs.is_url(p)]
    remote = [(t, p) for t, p in files if fs.is_url(p)]
    parts = []
    width = spark.sparkContext.defaultParallelism * 2
    if local or not remote:

        def opened(batches):
            for batch in batches:
                for table, path in zip(batch["table"], batch["path"]):
                    with open(path, "rb") as handle:
                        yield from parse(table, path, handle)

        paths = spark.createDataFrame(local, "table string, path string")
        parts.append(paths.repartition(max(1, min(len(local), width)), "path").mapInPandas(opened, schema))
    if remote:

        def fetched(batches):
            for batch in batches:
                for table, path, content in zip(batch["table"], batch["path"], batch["content"]):
                    yield from parse(table, path, BytesIO(content))

        tables = sorted({t for t, _ in remote})
        read = [
            spark.read.format("binaryFile")
            .load([p for t, p in remote if t == table])
            .select(F.lit(table).alias("table"), "path", "content")
            for table in tables
        ]
        # No repartition: it would shuffle the files' bytes. binaryFile's own partitions (small
        # files packed up to spark.sql.files.maxPartitionBytes, a larger one alone) bound what a
        # task, and so an Arrow batch, holds.
        parts.append(functools.reduce(DataFrame.unionByName, read).mapInPandas(fetched, schema))
    return functools.reduce(DataFrame.unionByName, parts)


# The landing table holds every raw table's rows together: the table each row came from, its
# contract columns as a map of column name to raw text (tables share no schema, and a few share
# a column name in another case, `Postcode` and `postcode`), its file, line and any fault.
SOURCE_TABLE = "_source_table"
VALUES = "_values"
LANDING_SCHEMA = T.StructType(
    [
        T.StructField(SOURCE_TABLE, T.StringType()),
        T.StructField(VALUES, T.MapType(T.StringType(), T.StringType())),
        T.StructField(SOURCE_FILE, T.StringType()),
        T.StructField(LINE, T.LongType()),
        T.StructField(ROW_FAULT, T.StringType()),
    ]
)


# Doubles below this are whole numbers exactly (a 53-bit mantissa): a 10-digit NHS number is.
EXACT_DOUBLE = 2**53


def parquet_text(table: str, column: str, parquet_type: str) -> Column:
    """A parquet column as the contract's text, as a CSV field is read (blank or spaces: null;
    spaces around a value go); a double that is a whole number as that number (120.0 -> "120";
    NaN is blank; a fraction keeps its text, for bronze's rules to judge); a whole number in a column
    of zero-padded codes (contract.ZERO_PADDED) padded back to its width, and so is digits-only
    text written short, but an NHS number's (as a CSV field is: text_widths, zero_padded)."""
    value = F.col(column)
    if parquet_type == "double":
        value = F.when(~F.isnan(value), value)  # NaN, pandas' blank, is a blank
        whole = (value % 1 == 0) & (F.abs(value) < EXACT_DOUBLE)
        # Each branch its own text: one CASE of a long and a double would be a double again.
        value = F.when(whole, value.try_cast(T.LongType()).cast(T.StringType())).otherwise(value.cast(T.StringType()))
    trimmed = F.regexp_replace(value.cast(T.StringType()), r"^\s+|\s+$", "")  # Java's \s: BLANKS
    text = F.nullif(trimmed, F.lit(""))
    number = whole_number(parquet_type) or parquet_type == "double"
    width = (ZERO_PADDED.get(table, {}) if number else text_widths(table)).get(column)
    if width is None:
        return text
    # Digits only: a fraction or a sign is no code's shortened form, and keeps its text.
    return F.when(text.rlike("^[0-9]+$") & (F.length(text) < width), F.lpad(text, width, "0")).otherwise(text)


def read_landing(
    spark: SparkSession, layouts: dict[str, tuple[str, dict[tuple[str, ...], list[fs.Location]]]]
) -> DataFrame:
    """Every row of the tables' raw files in the landing table's columns (layouts: table ->
    check_columns' result). Every CSV file of every table is parsed in one Spark job: a job per
    table is mostly scheduling at the sizes of most tables. Parquet rows carry no line."""
    parts = []
    csv_files = []
    for table, (kind, groups) in layouts.items():
        if kind == "csv":
            csv_files += [(table, str(p)) for group in groups.values() for p in group]
            continue
        # One scan per schema (check_columns groups by it): a scan of files that type a column
        # differently fails part-way through.
        for schema, group in groups.items():
            types = dict(part.split(":", 1) for part in schema)  # column -> its parquet type
            pairs = [part for c in TABLES[table] for part in (F.lit(c), parquet_text(table, c, types[c]))]
            parts.append(
                spark.read.parquet(*[str(p) for p in group]).select(
                    F.lit(table).alias(SOURCE_TABLE),
                    F.create_map(*pairs).alias(VALUES),
                    F.input_file_name().alias(SOURCE_FILE),
                    F.lit(None).cast("long").alias(LINE),
                    F.lit(None).cast("string").alias(ROW_FAULT),
                )
            )

    def parse(table, path, handle):
        import pandas as pd

        def frame(rows):
            return pd.DataFrame(rows, columns=LANDING_SCHEMA.fieldNames())

        columns, buffer = TABLES[table], []
        for values, line, fault in _csv_rows(handle, columns, text_widths(table)):
            buffer.append((table, dict(zip(columns, values)), path, line, fault))
            if len(buffer) >= BATCH_ROWS:
                yield frame(buffer)
                buffer = []
        if buffer:
            yield frame(buffer)

    if csv_files or not parts:
        parts.append(csv_handles(spark, csv_files, parse, LANDING_SCHEMA))
    return functools.reduce(DataFrame.unionByName, parts)


def landed(landing: DataFrame, table: str) -> DataFrame:
    """One table's rows of the landing table: its contract columns as text in contract order,
    with the file and line each came from and any row-level fault."""
    return landing.filter(F.col(SOURCE_TABLE) == table).select(
        *[F.col(VALUES)[c].alias(c) for c in TABLES[table]], SOURCE_FILE, LINE, ROW_FAULT
    )


def read_raw(spark: SparkSession, table: str, kind: str, groups: dict[tuple[str, ...], list[fs.Location]]) -> DataFrame:
    """One table's rows (`landed`) straight from its raw files."""
    return landed(read_landing(spark, {table: (kind, groups)}), table)


def raw_record_counts(spark: SparkSession, layouts: dict[str, tuple[str, dict]]) -> dict[str, int]:
    """Records in each table's raw files (layouts: table -> check_columns' result), counted apart
    from the landing parser and its Spark jobs: CSV records split from the bytes
    (`count_records`), parquet rows from the files' footers. The `read` of the reconciliation, so
    that a row lost anywhere on the way shows. Every table's CSV files are counted in one Spark
    job (a job per table is mostly scheduling at the sizes of most tables)."""
    import pyarrow.parquet as pq

    counts = {table: 0 for table in layouts}
    csv_files = []
    for table, (kind, groups) in layouts.items():
        files = [str(p) for group in groups.values() for p in group]
        if kind == "csv":
            csv_files += [(table, f) for f in files]
        elif any(fs.is_url(f) for f in files):
            counts[table] = spark.read.parquet(*files).count()  # from the footers too
        else:
            counts[table] = sum(pq.read_metadata(f).num_rows for f in files)
    if not csv_files:
        return counts

    def count(table, path, handle):
        import pandas as pd

        yield pd.DataFrame({"table": [table], "records": [count_records(handle)]})

    counted = csv_handles(spark, csv_files, count, "table string, records long").groupBy("table").agg(F.sum("records"))
    for table, records in counted.collect():
        counts[table] += int(records or 0)
    return counts


# The SparkContext's local property Spark shows as a job's description (its UI's Jobs and SQL
# pages, the event log), and SQL executions take as theirs; ours start with JOB_PREFIX.
JOB_DESCRIPTION = "spark.job.description"
JOB_PREFIX = "ld-spark: "


@contextlib.contextmanager
def job_description(spark: SparkSession, text: str) -> Iterator[None]:
    """The Spark jobs this thread starts in the block are described as JOB_PREFIX + `text` (the
    UI and the event log show it for every job of a write, where they would show "save at
    <unknown>:0"); the thread's description before is put back after. Local properties are the
    thread's own under PySpark's pinned threads (its default), so tables written side by side
    keep theirs. `text` names a table, never a value from one: event logs leave the linkage layer."""
    sc = spark.sparkContext
    before = sc.getLocalProperty(JOB_DESCRIPTION)
    sc.setLocalProperty(JOB_DESCRIPTION, JOB_PREFIX + text)
    try:
        yield
    finally:
        sc.setLocalProperty(JOB_DESCRIPTION, before)  # None removes it


def write_delta(
    df: DataFrame, path: str | Path, partition_by: list[str] | None = None, properties: dict[str, str] | None = None
) -> None:
    """Replace a Delta table's content in one transaction (a rerun leaves the same content);
    `properties`: Delta table properties to set with it."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    for name, value in (properties or {}).items():
        writer = writer.option(name, value)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(str(path))


def append_delta(df: DataFrame, path: str | Path, properties: dict[str, str] | None = None) -> None:
    """Add rows to a Delta table in one transaction (the table is made if absent, with the Delta
    table `properties`)."""
    writer = df.write.format("delta").mode("append")
    for name, value in (properties or {}).items():
        writer = writer.option(name, value)
    writer.save(str(path))


def read_delta(spark: SparkSession, path: str | Path, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(str(path))


def read_changes(spark: SparkSession, path: str | Path, version: int) -> DataFrame:
    """One commit's changes to the table (Delta's Change Data Feed, which must be on)."""
    reader = spark.read.format("delta").option("readChangeFeed", "true")
    return reader.option("startingVersion", version).option("endingVersion", version).load(str(path))


def table_properties(spark: SparkSession, path: str | Path) -> dict[str, str]:
    from delta.tables import DeltaTable

    return dict(DeltaTable.forPath(spark, str(path)).detail().select("properties").first()["properties"] or {})


def merge_replace(spark: SparkSession, path: str | Path, rows: DataFrame, keys: DataFrame, key: list[str]) -> None:
    """One MERGE: the table's rows with a key in `keys` go, `rows` come in (their keys among
    `keys`). The source is `keys` marked to delete and `rows` marked to insert; only a delete
    mark matches a target row (each key once, so a row matches at most one), and only an
    insert mark is inserted."""
    from delta.tables import DeltaTable

    op = "_merge_op"
    marked = keys.select(*key).withColumn(op, F.lit("delete"))
    for column in rows.columns:
        if column not in key:
            marked = marked.withColumn(column, F.lit(None).cast(rows.schema[column].dataType))
    source = marked.unionByName(rows.withColumn(op, F.lit("insert")))
    on = " AND ".join([*(f"t.`{k}` = s.`{k}`" for k in key), f"s.{op} = 'delete'"])
    (
        DeltaTable.forPath(spark, str(path))
        .alias("t")
        .merge(source.alias("s"), on)
        .whenMatchedDelete()
        .whenNotMatchedInsert(condition=f"s.{op} = 'insert'", values={c: f"s.`{c}`" for c in rows.columns})
        .execute()
    )


def delta_version(path: str | Path) -> int:
    """The table's latest committed version: the highest commit file in its transaction log
    (a commit file exists only once its commit succeeded). No Spark job, unlike a history query."""
    commits = [int(e.name[:20]) for e in fs.listing(fs.join(path, "_delta_log")) if COMMIT_FILE.fullmatch(e.name)]
    if not commits:
        raise FileNotFoundError(f"{path} is not a Delta table (no commit in its _delta_log)")
    return max(commits)


def rows_written(path: str | Path) -> int | None:
    """Rows the table's latest commit wrote (Delta's own operation metrics; None if it kept none)."""
    version = delta_version(path)
    for line in fs.read_text(fs.join(path, "_delta_log", f"{version:020d}.json")).splitlines():
        metrics = json.loads(line).get("commitInfo", {}).get("operationMetrics", {})
        if "numOutputRows" in metrics:
            return int(metrics["numOutputRows"])
    return None
