"""Raw extracts into the linkage layer's landing Delta tables, and the structural checks before it."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from ld_spark import io
from ld_spark.contract import TABLES
from ld_spark.errors import InputError

HEARINGS = TABLES["hmcts/hearings"]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_files_with_different_column_order_land_in_contract_order(spark, tmp_path):
    _write(tmp_path / "hmcts/hearings/a.csv", HEARINGS, [["H1", "C1", "2017-01-02", "FH", "Y"]])
    reordered = ["adjourned", "hearing_type", "hearing_date", "case_id", "hearing_id", "extra_column"]
    _write(tmp_path / "hmcts/hearings/b.csv", reordered, [["N", "TRIAL", "2017-02-03", "C1", "H2", "x"],
                                                          ["", "\"MNTN\"", "2017-03-04", "C2", "H3", "y"]])
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    landed = io.read_raw(spark, "hmcts/hearings", kind, groups).drop(io.SOURCE_FILE, io.LINE, io.ROW_FAULT)
    schema = T.StructType([T.StructField(c, T.StringType()) for c in HEARINGS])
    expected = spark.createDataFrame([
        ("H1", "C1", "2017-01-02", "FH", "Y"),
        ("H2", "C1", "2017-02-03", "TRIAL", "N"),
        ("H3", "C2", "2017-03-04", "MNTN", None),
    ], schema)
    assert_df_equality(landed, expected, ignore_row_order=True)


def test_landed_rows_remember_their_source_file(spark, tmp_path):
    _write(tmp_path / "hmcts/hearings/part1.csv", HEARINGS, [["H1", "C1", "2017-01-02", "FH", "Y"]])
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    source = io.read_raw(spark, "hmcts/hearings", kind, groups).select(io.SOURCE_FILE).first()[0]
    assert source.endswith("hmcts/hearings/part1.csv")


def test_rows_keep_their_line_and_malformed_rows_are_flagged_not_dropped(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(
        b"hearing_id,case_id,hearing_date,hearing_type,adjourned\n"
        b'H1,C1,2017-01-02,"FH\nwith a line break",Y\n'   # lines 2-3: one record
        b"H2,C1,2017-01-03,FH\n"                            # line 4: a field short
        b"H3,C1,2017-01-0\xff,FH,N\n"                       # line 5: not UTF-8
        b'H4,C1,2017-01-05,"TRIAL'                           # line 6: truncated inside quotes
    )
    rows = list(io._csv_rows(str(path), HEARINGS))
    lines = [(values[0], line, fault) for values, line, fault in rows]
    assert lines[0] == ("H1", 2, None)
    assert lines[1] == ("H2", 4, "row has 4 fields, header has 5")
    assert lines[2] == ("H3", 5, "bytes that are not UTF-8")
    assert lines[3][1] == 6 and lines[3][2] is not None
    assert len(lines) == 4


def test_missing_column_names_table_file_and_column(spark, tmp_path):
    _write(tmp_path / "hmcts/hearings/a.csv", [c for c in HEARINGS if c != "adjourned"], [["H1", "C1", "2017-01-02", "FH"]])
    with pytest.raises(InputError, match=r"table hmcts/hearings: file .*a\.csv lacks column adjourned$"):
        io.check_columns(spark, tmp_path, "hmcts/hearings")


def test_empty_table_directory_is_an_error(spark, tmp_path):
    (tmp_path / "hmcts/hearings").mkdir(parents=True)
    with pytest.raises(InputError, match="table hmcts/hearings: directory .* holds no files"):
        io.check_columns(spark, tmp_path, "hmcts/hearings")


def test_missing_table_directory_is_an_error(spark, tmp_path):
    with pytest.raises(InputError, match="table hes_ae: directory .* is missing"):
        io.check_columns(spark, tmp_path, "hes_ae")


def test_file_that_is_not_csv_or_parquet_is_an_error(spark, tmp_path):
    _write(tmp_path / "hmcts/hearings/a.csv", HEARINGS, [])
    (tmp_path / "hmcts/hearings/notes.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match=r"file .*notes\.xlsx is not CSV or parquet"):
        io.check_columns(spark, tmp_path, "hmcts/hearings")


def test_header_that_is_not_utf8_is_an_error(spark, tmp_path):
    path = tmp_path / "hmcts/hearings/a.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(",".join(HEARINGS).encode() + b"\xff\xfe\n")
    with pytest.raises(InputError, match="row 1 \\(header\\) is not UTF-8"):
        io.check_columns(spark, tmp_path, "hmcts/hearings")


def test_parquet_files_are_accepted_in_place_of_csv(spark, tmp_path):
    schema = T.StructType([T.StructField(c, T.StringType()) for c in HEARINGS])
    df = spark.createDataFrame([("H1", "C1", "2017-01-02", "FH", "Y")], schema)
    df.coalesce(1).write.parquet(str(tmp_path / "staging"))
    target = tmp_path / "hmcts/hearings"
    target.mkdir(parents=True)
    for f in (tmp_path / "staging").glob("part-*.parquet"):
        shutil.copy(f, target / "part.parquet")
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    assert kind == "parquet"
    assert_df_equality(io.read_raw(spark, "hmcts/hearings", kind, groups).drop(io.SOURCE_FILE, io.LINE, io.ROW_FAULT), df)
