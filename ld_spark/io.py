"""All reading of raw extracts and reading/writing of Delta tables goes through here."""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import os
import re
from pathlib import Path
from typing import Iterator

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ld_spark.contract import TABLES
from ld_spark.errors import InputError, OutputBusy

SOURCE_FILE = "_source_file"
COMMIT_FILE = re.compile(r"\d{20}\.json")


def raw_files(raw_root: str | Path, table: str) -> tuple[str, list[Path]]:
    """("csv" | "parquet", the table's files), or InputError naming what is wrong."""
    folder = Path(raw_root) / table
    if not folder.is_dir():
        raise InputError(f"table {table}: directory {folder} is missing")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    if not files:
        raise InputError(f"table {table}: directory {folder} holds no files")
    kinds = {p.suffix.lower() for p in files}
    if kinds == {".csv"}:
        return "csv", files
    if kinds == {".parquet"}:
        return "parquet", files
    odd = next(p for p in files if p.suffix.lower() not in (".csv", ".parquet"))
    raise InputError(f"table {table}: file {odd} is not CSV or parquet (all files must be one or the other)")


def csv_header(table: str, path: Path) -> list[str]:
    """The header row (a UTF-8 byte-order mark, as spreadsheet exports write, is allowed)."""
    if path.stat().st_size == 0:
        raise InputError(f"table {table}: file {path} is empty (not even a header row)")
    with path.open("rb") as handle:
        first = handle.readline()  # the header line alone: a bad byte further down is a row's fault
    try:
        return next(csv.reader([first.decode("utf-8-sig")]), [])
    except UnicodeDecodeError as err:
        raise InputError(f"table {table}: file {path}: row 1 (header) is not UTF-8 ({err.reason})") from None


def check_columns(spark: SparkSession, raw_root: str | Path, table: str) -> tuple[str, dict[tuple[str, ...], list[Path]]]:
    """Fail before anything is written if a file lacks a contract column.

    Returns the format and the files grouped by header (column order may differ between files).
    """
    kind, files = raw_files(raw_root, table)
    expected = TABLES[table]
    groups: dict[tuple[str, ...], list[Path]] = {}
    for path in files:
        columns = csv_header(table, path) if kind == "csv" else spark.read.parquet(str(path)).columns
        missing = [c for c in expected if c not in columns]
        if missing:
            raise InputError(f"table {table}: file {path} lacks column {missing[0]}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        groups.setdefault(tuple(columns), []).append(path)
    return kind, groups


LINE = "_line"
ROW_FAULT = "_row_fault"
BATCH_ROWS = 20_000
# A byte that is not UTF-8, as the surrogateescape error handler leaves it in the text.
NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _csv_rows(path: str, columns: list[str]):
    """Rows of one CSV file as contract-ordered string tuples with their line and any fault.

    Python's csv module (not Spark's reader) so that every row keeps its line number and a
    malformed row (wrong field count, bytes that are not UTF-8, a quote left open at the end
    of a truncated file) is reported rather than silently nulled.
    """
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        positions = [header.index(c) for c in columns]
        width = len(header)
        line = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield [None] * len(columns), line, f"malformed CSV ({err})"
                return
            fault = None
            if len(row) != width:
                fault = f"row has {len(row)} fields, header has {width}"
            elif NOT_UTF8.search("".join(row)):
                fault = "bytes that are not UTF-8"
            values = [row[i] if i < len(row) and row[i] != "" else None for i in positions]
            if fault == "bytes that are not UTF-8":
                values = [v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if v else v for v in values]
            yield values, line, fault
            line = reader.line_num + 1


def read_raw(spark: SparkSession, table: str, kind: str, groups: dict[tuple[str, ...], list[Path]]) -> DataFrame:
    """A table's rows as strings in contract column order, with the file and line each came from
    and any row-level fault (CSV only; parquet rows carry no line)."""
    columns = TABLES[table]
    files = [str(p) for group in groups.values() for p in group]
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns]
                          + [T.StructField(SOURCE_FILE, T.StringType()), T.StructField(LINE, T.LongType()),
                             T.StructField(ROW_FAULT, T.StringType())])
    if kind == "parquet":
        df = spark.read.parquet(*files)
        return df.select(*[F.col(c).cast(T.StringType()).alias(c) for c in columns],
                         F.input_file_name().alias(SOURCE_FILE), F.lit(None).cast("long").alias(LINE),
                         F.lit(None).cast("string").alias(ROW_FAULT))

    def parse(batches):
        import pandas as pd

        for batch in batches:
            for path in batch["path"]:
                buffer = []
                for values, line, fault in _csv_rows(path, columns):
                    buffer.append((*values, path, line, fault))
                    if len(buffer) >= BATCH_ROWS:
                        yield pd.DataFrame(buffer, columns=schema.fieldNames())
                        buffer = []
                if buffer:
                    yield pd.DataFrame(buffer, columns=schema.fieldNames())

    paths = spark.createDataFrame([(f,) for f in files], "path string")
    paths = paths.repartition(min(len(files), spark.sparkContext.defaultParallelism * 2), "path")
    return paths.mapInPandas(parse, schema)


def write_delta(df: DataFrame, path: str | Path, partition_by: list[str] | None = None) -> None:
    """Replace a Delta table's content in one transaction (a rerun leaves the same content)."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(str(path))


def read_delta(spark: SparkSession, path: str | Path) -> DataFrame:
    return spark.read.format("delta").load(str(path))


def delta_version(path: str | Path) -> int:
    """The table's latest committed version: the highest commit file in its transaction log
    (a commit file exists only once its commit succeeded). No Spark job, unlike a history query."""
    commits = [int(p.name[:20]) for p in (Path(path) / "_delta_log").iterdir() if COMMIT_FILE.fullmatch(p.name)]
    if not commits:
        raise FileNotFoundError(f"{path} is not a Delta table (no commit in its _delta_log)")
    return max(commits)


LOCK_FILE = "_run.lock"


@contextlib.contextmanager
def exclusive(out: str | Path) -> Iterator[None]:
    """Hold OUT_DIR/_run.lock (an flock) for the whole run, or raise OutputBusy at once.

    The kernel drops the lock when the holder exits, however it exits (SIGKILL included), so a
    crashed run never blocks the next. Local and POSIX shared filesystems only: on object stores
    Delta's own optimistic concurrency is the guard (a conflicting commit fails, none is torn).
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise OutputBusy(f"output {folder} is in use by {holder}; wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"run pid {os.getpid()} started {dt.datetime.now().isoformat(timespec='seconds')}")
        handle.flush()
        yield
    finally:
        handle.close()
