from chispa import assert_column_equality
from pyspark.sql import functions as F

from ld_spark import normalise


def _check(spark, fn, pairs):
    df = spark.createDataFrame(pairs, "raw string, expected string").withColumn("got", fn(F.col("raw")))
    assert_column_equality(df, "got", "expected")


def test_names_fold_case_hyphens_apostrophes_and_spaces(spark):
    _check(
        spark,
        normalise.name,
        [
            ("smith-jones", "SMITH JONES"),
            ("O'Brien", "OBRIEN"),
            ("  mary  ann ", "MARY ANN"),
            ("SMITH JONES", "SMITH JONES"),
            ("", None),
            (None, None),
            ("J.", "J"),
        ],
    )


def test_postcodes_get_one_space_and_no_fixed_abode_becomes_null(spark):
    _check(
        spark,
        normalise.postcode,
        [
            ("ls62ab", "LS6 2AB"),
            ("LS6  2AB", "LS6 2AB"),
            ("sw1a 1aa", "SW1A 1AA"),
            ("NF1 1NF", None),
            ("zz99 3vz", None),
            ("not a postcode", None),
            (None, None),
        ],
    )


def test_sectors_are_normalised_and_no_fixed_abode_sector_is_null(spark):
    _check(
        spark,
        normalise.sector,
        [("ls6 2", "LS6 2"), ("LS62", "LS6 2"), ("NF1 1", None), ("ZZ99 3", None), ("LS6", None)],
    )


def test_nhs_numbers_must_pass_mod11(spark):
    _check(
        spark,
        normalise.nhs_number,
        [
            ("9434765919", "9434765919"),
            ("943 476 5919", "9434765919"),
            ("9434765918", None),
            ("123", None),
            (None, None),
        ],
    )


def test_dob_placeholders_and_impossible_dates_are_unknown(spark):
    df = spark.createDataFrame(
        [("1980-02-29",), ("1981-02-29",), ("1900-01-01",), ("1800-01-01",), ("29/02/1980",), (None,)], "raw string"
    ).withColumn("got", normalise.dob(F.col("raw")).cast("string"))
    assert [r.got for r in df.collect()] == ["1980-02-29", None, None, None, None, None]


def test_pnc_ids_and_initials(spark):
    _check(spark, normalise.pnc_id, [("2004/7273074a", "2004/7273074A"), ("04/7273074A", None)])
    _check(spark, normalise.initial, [("j", "J"), ("Jane", "J"), ("1", None), (None, None)])
