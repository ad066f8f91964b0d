"""All reading of raw extracts and reading/writing of Delta tables goes through here."""
from __future__ import annotations

import csv
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ld_spark.contract import TABLES
from ld_spark.errors import InputError

SOURCE_FILE = "_source_file"


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


def csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), [])
    except UnicodeDecodeError as err:
        raise InputError(f"file {path}: row 1 (header) is not UTF-8 ({err.reason})") from None


def check_columns(spark: SparkSession, raw_root: str | Path, table: str) -> tuple[str, dict[tuple[str, ...], list[Path]]]:
    """Fail before anything is written if a file lacks a contract column.

    Returns the format and the files grouped by header (column order may differ between files).
    """
    kind, files = raw_files(raw_root, table)
    expected = TABLES[table]
    groups: dict[tuple[str, ...], list[Path]] = {}
    for path in files:
        columns = csv_header(path) if kind == "csv" else spark.read.parquet(str(path)).columns
        missing = [c for c in expected if c not in columns]
        if missing:
            raise InputError(f"table {table}: file {path} lacks column {missing[0]}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        groups.setdefault(tuple(columns), []).append(path)
    return kind, groups


def read_raw(spark: SparkSession, table: str, kind: str, groups: dict[tuple[str, ...], list[Path]]) -> DataFrame:
    """A table's rows as strings in contract column order, with the file each came from."""
    columns = TABLES[table]
    parts = []
    for header, files in groups.items():
        paths = [str(p) for p in files]
        if kind == "csv":
            # Every column a string: typing and validation are the bronze stage's job.
            schema = T.StructType([T.StructField(c, T.StringType()) for c in header])
            df = spark.read.csv(paths, schema=schema, header=True, escape='"', mode="PERMISSIVE")
        else:
            df = spark.read.parquet(*paths)
        parts.append(df.select(*[F.col(c).cast(T.StringType()).alias(c) for c in columns],
                               F.input_file_name().alias(SOURCE_FILE)))
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result


def write_delta(df: DataFrame, path: str | Path, partition_by: list[str] | None = None) -> None:
    """Replace a Delta table's content in one transaction (a rerun leaves the same content)."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(str(path))


def read_delta(spark: SparkSession, path: str | Path) -> DataFrame:
    return spark.read.format("delta").load(str(path))


def delta_version(spark: SparkSession, path: str | Path) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, str(path)).history(1).select("version").first()[0])
