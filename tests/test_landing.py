"""Raw extracts into the linkage layer's landing Delta tables, and the structural checks before it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from conftest import sql_descriptions
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
    _write(
        tmp_path / "hmcts/hearings/b.csv",
        reordered,
        [["N", "TRIAL", "2017-02-03", "C1", "H2", "x"], ["", '"MNTN"', "2017-03-04", "C2", "H3", "y"]],
    )
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    landed = io.read_raw(spark, "hmcts/hearings", kind, groups).drop(io.SOURCE_FILE, io.LINE, io.ROW_FAULT)
    schema = T.StructType([T.StructField(c, T.StringType()) for c in HEARINGS])
    expected = spark.createDataFrame(
        [
            ("H1", "C1", "2017-01-02", "FH", "Y"),
            ("H2", "C1", "2017-02-03", "TRIAL", "N"),
            ("H3", "C2", "2017-03-04", "MNTN", None),
        ],
        schema,
    )
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
        b'H1,C1,2017-01-02,"FH\nwith a line break",Y\n'  # lines 2-3: one record
        b"H2,C1,2017-01-03,FH\n"  # line 4: a field short
        b"H3,C1,2017-01-0\xff,FH,N\n"  # line 5: not UTF-8
        b'H4,C1,2017-01-05,"TRIAL'  # line 6: truncated inside quotes
    )
    rows = _rows(path)
    lines = [(values[0], line, fault) for values, line, fault in rows]
    assert lines[0] == ("H1", 2, None)
    assert lines[1] == ("H2", 4, "row has 4 fields, header has 5")
    assert lines[2] == ("H3", 5, "bytes that are not UTF-8")
    assert lines[3][1] == 6 and lines[3][2] is not None
    assert len(lines) == 4


def test_missing_column_names_table_file_and_column(spark, tmp_path):
    _write(
        tmp_path / "hmcts/hearings/a.csv", [c for c in HEARINGS if c != "adjourned"], [["H1", "C1", "2017-01-02", "FH"]]
    )
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
    assert_df_equality(
        io.read_raw(spark, "hmcts/hearings", kind, groups).drop(io.SOURCE_FILE, io.LINE, io.ROW_FAULT), df
    )


# Issue 18: rows that vanish or crash.

HEADER = b"hearing_id,case_id,hearing_date,hearing_type,adjourned\n"


def _rows(path: Path) -> list:
    with path.open("rb") as handle:
        return list(io._csv_rows(handle, HEARINGS))


def _count(path: Path) -> int:
    with path.open("rb") as handle:
        return io.count_records(handle)


def _faults(path: Path) -> list[tuple[str | None, int, str | None]]:
    return [(values[0], line, fault) for values, line, fault in _rows(path)]


def test_field_over_the_csv_size_limit_is_quarantined_and_the_rows_after_it_are_read(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(
        HEADER
        + b"H1,C1,2017-01-02,FH,Y\n"
        + b"H2,C1,2017-01-03,FH,"
        + b"N" * 200_000
        + b"\n"  # line 3: over csv.field_size_limit()
        + b"H3,C1,2017-01-04,FH,Y\nH4,C1,2017-01-05,FH,N\n"
    )
    assert _faults(path) == [
        ("H1", 2, None),
        (None, 3, "malformed CSV (field larger than field limit (131072))"),
        ("H3", 4, None),
        ("H4", 5, None),
    ]


@pytest.mark.parametrize(
    "rest",
    [
        b"H4,C1,2017-01-04,FH,Y\nH5,C1,2017-01-05,FH,N\n",  # no other quote: open to the end of the file
        b'H4,C1,2017-01-04,FH,Y\nH5,C1,"2017-01-05",FH,N\n',  # "closed" by the opening quote of a later field
    ],
    ids=["open_to_end_of_file", "closed_by_a_later_fields_quote"],
)
def test_quote_left_open_mid_file_costs_only_its_own_line(tmp_path, rest):
    path = tmp_path / "a.csv"
    path.write_bytes(HEADER + b'H2,C1,2017-01-02,FH,Y\nH3,"C1,2017-01-03,FH,N\n' + rest)
    assert _faults(path) == [
        ("H2", 2, None),
        ("H3", 3, "quote opened on line 3 is not closed; row has 2 fields, header has 5"),
        ("H4", 4, None),
        ("H5", 5, None),
    ]


def test_row_with_wrong_field_count_and_a_latin1_byte_is_quarantined_with_both_reasons_as_text(spark, tmp_path):
    path = tmp_path / "hmcts/hearings/a.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(HEADER + b"H1,C1,2017-01-02,FH,Y\nH2,Caf\xe9,2017-01-03,FH\nH3,C1,2017-01-04,FH,N\n")
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    rows = sorted(io.read_raw(spark, "hmcts/hearings", kind, groups).collect(), key=lambda r: r[io.LINE])
    assert [(r["hearing_id"], r["case_id"], r[io.LINE], r[io.ROW_FAULT]) for r in rows] == [
        ("H1", "C1", 2, None),
        ("H2", "Caf\ufffd", 3, "row has 4 fields, header has 5; bytes that are not UTF-8"),
        ("H3", "C1", 4, None),
    ]


def test_record_count_is_taken_from_the_bytes(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(
        HEADER + b'H1,C1,2017-01-02,"FH\r\nsplit",Y\r\n'  # one record over two lines
        b"H2,C1,2017-01-03,FH,N\n"
        b"\n"  # a blank line is no record
        b'H3,"C1,2017-01-04,FH,N\n'  # a quote left open: its line alone
        b"H4,C1,2017-01-05,FH,N\n"
        b"H5,C1,2017-01-06,FH"
    )  # last record, no line end
    assert _count(path) == 5
    path.write_bytes(path.read_bytes() + b"\n\n")  # trailing line end and blank line
    assert _count(path) == 5
    (tmp_path / "header_only.csv").write_bytes(HEADER)
    assert _count(tmp_path / "header_only.csv") == 0


def test_landing_holds_every_record_the_raw_count_finds(spark, tmp_path):
    folder = tmp_path / "hmcts/hearings"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_bytes(
        HEADER + b"H1,C1,2017-01-02,FH," + b"Y" * 200_000 + b"\nH2,C1,2017-01-03,FH,N\n"
        b'H3,"C1,2017-01-04,FH,N\nH4,C1,2017-01-05,FH,N\nH5,C1,2017-01-0\xff,FH\n'
    )
    (folder / "b.csv").write_bytes(HEADER + b"H6,C1,2017-01-06,FH,N")
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    assert io.raw_record_counts(spark, {"hmcts/hearings": (kind, groups)}) == {"hmcts/hearings": 6}
    assert io.read_raw(spark, "hmcts/hearings", kind, groups).count() == 6


def test_contract_column_named_twice_in_the_header_is_an_error(spark, tmp_path):
    # A repeated extra column ("note") is never read; a repeated contract column would have two values.
    _write(
        tmp_path / "hmcts/hearings/a.csv",
        HEARINGS + ["case_id", "note", "note"],
        [["H1", "C1", "2017-01-02", "FH", "Y", "C2", "", ""]],
    )
    with pytest.raises(
        InputError,
        match=r"^table hmcts/hearings: file .*a\.csv: column case_id appears 2 times "
        r"in the header \(row 1\)$",
    ):
        io.check_columns(spark, tmp_path, "hmcts/hearings")


@pytest.mark.parametrize("stray", [".old_extract.csv", "_part-9.csv", "archive/part-0.csv"])
def test_hidden_file_or_sub_folder_in_a_table_folder_is_an_error_naming_it(spark, tmp_path, stray):
    _write(tmp_path / "hmcts/hearings/a.csv", HEARINGS, [["H1", "C1", "2017-01-02", "FH", "Y"]])
    _write(tmp_path / "hmcts/hearings" / stray, HEARINGS, [["H2", "C1", "2017-01-02", "FH", "Y"]])
    named = stray.split("/")[0]
    with pytest.raises(InputError, match=rf"^table hmcts/hearings: .*/hmcts/hearings/{re.escape(named)} is "):
        io.check_columns(spark, tmp_path, "hmcts/hearings")


def test_the_markers_spark_writes_beside_its_files_are_tolerated(spark, tmp_path):
    _write(tmp_path / "hmcts/hearings/part-0.csv", HEARINGS, [["H1", "C1", "2017-01-02", "FH", "Y"]])
    for marker in ("_SUCCESS", "._SUCCESS.crc", ".part-0.csv.crc"):
        (tmp_path / "hmcts/hearings" / marker).write_bytes(b"")
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    assert (kind, [p.name for group in groups.values() for p in group]) == ("csv", ["part-0.csv"])


def _parquet(path: Path, **columns) -> None:
    """A parquet file of one row with the hearings columns, any of them given as a pyarrow array."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = dict(zip(HEARINGS, [["H1"], ["C1"], ["2017-01-02"], ["FH"], ["Y"]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({c: columns.get(c, pa.array(row[c])) for c in HEARINGS}), path)


def _arrays():
    import pyarrow as pa

    return {
        "struct_in_a_str_column": ("case_id", pa.array([{"id": "C1"}])),
        "array_in_a_str_column": ("hearing_type", pa.array([["FH"]])),
        "binary_in_a_str_column": ("hearing_id", pa.array([b"H1"], pa.binary())),
        "integer_in_a_date_column": ("hearing_date", pa.array([20170102], pa.int64())),
        "boolean_in_a_y_or_n_column": ("adjourned", pa.array([True])),
    }


@pytest.mark.parametrize("case", list(_arrays()))
def test_parquet_column_of_a_type_the_contract_cannot_read_is_an_error(spark, tmp_path, case):
    column, array = _arrays()[case]
    _parquet(tmp_path / "hmcts/hearings/a.parquet")
    _parquet(tmp_path / "hmcts/hearings/b.parquet", **{column: array})
    with pytest.raises(InputError, match=rf"^table hmcts/hearings: file .*b\.parquet: column {column} is "):
        io.check_columns(spark, tmp_path, "hmcts/hearings")


def test_parquet_files_typing_a_column_differently_land_together_as_contract_text(spark, tmp_path):
    import datetime as dt

    import pyarrow as pa

    _parquet(
        tmp_path / "hmcts/hearings/a.parquet",
        hearing_id=pa.array([1], pa.int64()),
        hearing_date=pa.array([dt.date(2017, 1, 2)]),
    )
    _parquet(tmp_path / "hmcts/hearings/b.parquet", hearing_id=pa.array(["H2"]))
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    landed = io.read_raw(spark, "hmcts/hearings", kind, groups)
    assert sorted(tuple(r[c] for c in HEARINGS) for r in landed.collect()) == [
        ("1", "C1", "2017-01-02", "FH", "Y"),
        ("H2", "C1", "2017-01-02", "FH", "Y"),
    ]
    assert io.raw_record_counts(spark, {"hmcts/hearings": (kind, groups)}) == {"hmcts/hearings": 2}


def test_a_field_of_spaces_is_blank_and_spaces_around_a_value_go_in_csv_and_parquet_alike(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A fixed-width export's padding: "  " is no date, " FH " is the code FH, "" in parquet is blank.
    _write(tmp_path / "hmcts/hearings/a.csv", HEARINGS, [["H1", "C1", "  ", " FH ", "Y\t"]])
    kind, groups = io.check_columns(spark, tmp_path, "hmcts/hearings")
    csv_rows = [tuple(r[c] for c in HEARINGS) for r in io.read_raw(spark, "hmcts/hearings", kind, groups).collect()]
    assert csv_rows == [("H1", "C1", None, "FH", "Y")]
    other = tmp_path / "other"
    path = other / "hmcts/hearings/a.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table(dict(zip(HEARINGS, [["H1"], ["C1"], [""], [" FH "], ["Y\t"]]))), path)
    kind, groups = io.check_columns(spark, other, "hmcts/hearings")
    parquet_rows = [tuple(r[c] for c in HEARINGS) for r in io.read_raw(spark, "hmcts/hearings", kind, groups).collect()]
    assert parquet_rows == csv_rows


def test_zero_padded_codes_a_parquet_file_holds_as_whole_numbers_get_their_zeros_back(spark, tmp_path):
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    # A writer inferred LegalStatusCode ("02" s2, "20" s136) as integers, and the period ids too.
    table = "mhsds/mhs401_mha_period"
    columns = {c: pa.array(["x", "y", "z"]) for c in TABLES[table]}
    columns["MHActLegalStatusClassPeriodId"] = pa.array([7, 8, 9], pa.int64())
    columns["LegalStatusCode"] = pa.array([2, 20, None], pa.int32())
    path = tmp_path / "mhsds/mhs401_mha_period/a.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table(columns), path)
    # A database export's NUMBER(2): decimal(2,0).
    columns["MHActLegalStatusClassPeriodId"] = pa.array(["10"])
    columns["LegalStatusCode"] = pa.array([decimal.Decimal(3)], pa.decimal128(2, 0))
    pq.write_table(pa.table({c: v[:1] for c, v in columns.items()}), path.with_name("b.parquet"))
    kind, groups = io.check_columns(spark, tmp_path, table)
    landed = io.read_raw(spark, table, kind, groups)
    got = sorted((r["MHActLegalStatusClassPeriodId"], r["LegalStatusCode"]) for r in landed.collect())
    # The codes are padded to the contract's two digits; an id, which has no width, is not.
    assert got == [("10", "03"), ("7", "02"), ("8", "20"), ("9", None)]


def test_a_tables_writes_are_described_in_spark_as_that_table_and_the_threads_own_description_kept(spark, tmp_path):
    from ld_spark import catalog

    before = sql_descriptions(spark)
    with io.job_description(spark, "a caller's own"):  # described as "ld-spark: a caller's own"
        catalog.write(spark.range(3), tmp_path, catalog.ESTIMATES)
        catalog.append(spark.range(2), tmp_path, catalog.ESTIMATES)
        assert spark.sparkContext.getLocalProperty(io.JOB_DESCRIPTION) == "ld-spark: a caller's own"
    assert spark.sparkContext.getLocalProperty(io.JOB_DESCRIPTION) is None
    new = [d for i, d in sql_descriptions(spark).items() if i not in before]
    assert "ld-spark: write analysis/estimates" in new
    assert "ld-spark: append to analysis/estimates" in new
    assert catalog.read(spark, tmp_path, catalog.ESTIMATES).count() == 5


def test_a_pandas_written_parquet_files_doubles_are_read_as_the_whole_numbers_they_hold(spark, tmp_path):
    import math

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    # pandas writes an integer column with a blank as double: a data manager's read_csv -> to_parquet
    # gives NEWNHSNO 4857773456.0, AEATTENDDISP 1.0 (the code 01) and ARRIVALTIME 930.0 (09:30).
    table = "hes_ae"
    frame = pd.DataFrame({c: ["x", "y", "z", "w"] for c in TABLES[table]})
    frame["AEKEY"] = ["A1", "A2", "A3", "A4"]
    frame["NEWNHSNO"] = [4857773456.0, None, 9434765919.0, 1.5]
    frame["AEATTENDDISP"] = [1.0, 12.0, None, float("nan")]
    frame["ARRIVALTIME"] = [930.0, 1405.0, 5.0, 0.0]
    # A column blank but in one row is double too: a number in a date column is read as its text
    # (for bronze to quarantine as unparseable), a blank as a blank.
    frame["ARRIVALDATE"] = [None, None, None, 20180417.0]
    path = tmp_path / table / "a.parquet"
    path.parent.mkdir(parents=True)
    frame.to_parquet(path, index=False)
    # Another writer keeps NaN as a value (pyarrow from a list), not as a null as pandas does.
    nan = frame.iloc[:1].assign(AEKEY="A5", NEWNHSNO=float("nan"), AEATTENDDISP=float("nan"))
    pq.write_table(
        pa.table({c: pa.array(nan[c].tolist(), from_pandas=False) for c in nan.columns}), path.with_name("b.parquet")
    )
    assert math.isnan(pq.read_table(path.with_name("b.parquet")).column("NEWNHSNO")[0].as_py())
    kind, groups = io.check_columns(spark, tmp_path, table)
    got = {
        r["AEKEY"]: (r["NEWNHSNO"], r["AEATTENDDISP"], r["ARRIVALTIME"], r["ARRIVALDATE"])
        for r in io.read_raw(spark, table, kind, groups).collect()
    }
    # Whole numbers as their digits, codes padded to their width; a fraction keeps its text for
    # the rules (here an NHS number that normalises to none); pandas' NaN is a blank.
    assert got == {
        "A1": ("4857773456", "01", "0930", None),
        "A2": (None, "12", "1405", None),
        "A3": ("9434765919", None, "0005", None),
        "A4": ("1.5", None, "0000", "20180417"),
        "A5": (None, None, "0930", None),
    }


def test_a_pandas_written_parquet_copy_of_an_extract_lands_as_its_csv_files_do(spark, tiny, tmp_path):
    import pandas as pd

    # What a data manager's script does with our CSV files: pandas infers each column's type
    # (int64 codes, double NHS numbers where some are blank) and writes parquet.
    for table in TABLES:
        frame = pd.read_csv(tiny / table / "part-0.csv", keep_default_na=False, na_values=[""])
        (tmp_path / table).mkdir(parents=True)
        frame.to_parquet(tmp_path / table / "part-0.parquet", index=False)

    def values(root: Path, table: str) -> list[tuple]:
        kind, groups = io.check_columns(spark, root, table)
        landed = io.read_raw(spark, table, kind, groups).select(*TABLES[table])
        return sorted(tuple("" if v is None else v for v in r) for r in landed.collect())

    inferred = set()
    for table in TABLES:
        assert values(tmp_path, table) == values(tiny, table), table
        schema = pd.read_parquet(tmp_path / table / "part-0.parquet").dtypes
        inferred |= {str(t) for t in schema}
    assert {"int64", "float64"} <= inferred  # the copy does hold numbers, not only strings


def test_codes_written_without_their_leading_zeros_get_them_back_from_csv_and_parquet_text(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A spreadsheet saved the extract: face-to-face "01" as 1, s2 "02" as 2. Digits only are
    # padded; a fraction, a letter or a code at its width keeps its text for bronze's rules.
    contacts = "mhsds/mhs201_care_contact"
    header = ",".join(TABLES[contacts])
    lines = [
        f"C{i},S1,P1,2017-05-0{i},5,{mech},201705"
        for i, mech in enumerate(["1", "01", "1.0", "x1", "", "123"], start=1)
    ]
    path = tmp_path / contacts / "a.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([header, *lines]) + "\n")
    kind, groups = io.check_columns(spark, tmp_path, contacts)
    got = {r["CareContactId"]: r["ConsMechanismMH"] for r in io.read_raw(spark, contacts, kind, groups).collect()}
    assert got == {"C1": "01", "C2": "01", "C3": "1.0", "C4": "x1", "C5": None, "C6": "123"}
    # The same in a parquet file whose writer kept the codes as text.
    periods = "mhsds/mhs401_mha_period"
    columns = {c: pa.array(["x", "y"]) for c in TABLES[periods]}
    columns["MHActLegalStatusClassPeriodId"] = pa.array(["M1", "M2"])
    columns["LegalStatusCode"] = pa.array(["2", "20"])
    target = tmp_path / periods / "a.parquet"
    target.parent.mkdir(parents=True)
    pq.write_table(pa.table(columns), target)
    kind, groups = io.check_columns(spark, tmp_path, periods)
    got = {
        r["MHActLegalStatusClassPeriodId"]: r["LegalStatusCode"]
        for r in io.read_raw(spark, periods, kind, groups).collect()
    }
    assert got == {"M1": "02", "M2": "20"}

    # Nine digits of text in an NHS number's column lost a digit, not a leading zero: kept as they
    # are (normalise.nhs_number makes them none), never padded into a number that might pass.
    visits = "hes_ae"
    row = {c: "" for c in TABLES[visits]} | {"AEKEY": "A1", "NEWNHSNO": "485777345", "AEATTENDDISP": "1"}
    target = tmp_path / visits / "a.csv"
    target.parent.mkdir(parents=True)
    target.write_text(",".join(TABLES[visits]) + "\n" + ",".join(row[c] for c in TABLES[visits]) + "\n")
    kind, groups = io.check_columns(spark, tmp_path, visits)
    got = [(r["NEWNHSNO"], r["AEATTENDDISP"]) for r in io.read_raw(spark, visits, kind, groups).collect()]
    assert got == [("485777345", "01")]
