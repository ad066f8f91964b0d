"""Bronze rules on tiny hand-built landed frames: each row ends in exactly one state."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ld_spark import bronze
from ld_spark.bronze import state_counts
from ld_spark.contract import TABLES
from ld_spark.errors import InputError
from ld_spark.io import LINE, ROW_FAULT, SOURCE_FILE

LINEAGE = [SOURCE_FILE, LINE, ROW_FAULT]


def landed(spark, table, rows):
    """rows: dicts of contract values plus optional line/fault; missing columns are null."""
    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in TABLES[table]]
        + [
            T.StructField(SOURCE_FILE, T.StringType()),
            T.StructField(LINE, T.LongType()),
            T.StructField(ROW_FAULT, T.StringType()),
        ]
    )
    data = [
        tuple(r.get(c) for c in TABLES[table]) + (r.get("file", "f.csv"), r.get("line", i + 2), r.get("fault"))
        for i, r in enumerate(rows)
    ]
    return spark.createDataFrame(data, schema)


def states(df, key):
    return {r[key]: r[bronze.STATUS] for r in df.select(key, bronze.STATUS).collect()}


HEARING = {"hearing_id": "H1", "case_id": "C1", "hearing_date": "2017-01-02", "hearing_type": "FH", "adjourned": "Y"}


def test_exact_resubmission_is_a_duplicate_and_the_first_copy_is_kept(spark):
    df = landed(spark, "hmcts/hearings", [HEARING, HEARING, {**HEARING, "hearing_id": "H2"}])
    out = df.transform(bronze.classify("hmcts/hearings"))
    rows = sorted((r["hearing_id"], r[LINE], r[bronze.STATUS]) for r in out.collect())
    assert rows == [("H1", 2, "loaded"), ("H1", 3, "duplicate"), ("H2", 4, "loaded")]
    assert state_counts(out) == {"read": 3, "loaded": 2, "quarantined": 0, "duplicate": 1, "superseded": 0}


def test_broken_rules_quarantine_the_row_with_rule_column_file_and_line(spark):
    df = landed(
        spark,
        "hmcts/hearings",
        [
            {**HEARING, "hearing_id": "H1", "hearing_date": "2017-02-30", "line": 7, "file": "hearings_2.csv"},
            {**HEARING, "hearing_id": "H2", "hearing_type": "XX"},
            {**HEARING, "hearing_id": None},
            {**HEARING, "hearing_id": "H4", "adjourned": "maybe"},
            {**HEARING, "hearing_id": "H5", "fault": "row has 4 fields, header has 5"},
            {**HEARING, "hearing_id": "H6"},
        ],
    )
    out = df.transform(bronze.classify("hmcts/hearings"))
    q = out.transform(bronze.quarantined("hmcts/hearings", "run-1"))
    got = {(r["rule"], r["column"], r["source_file"], r["line"]) for r in q.collect()}
    assert got == {
        ("unparseable_date", "hearing_date", "hearings_2.csv", 7),
        ("code_outside_list", "hearing_type", "f.csv", 3),
        ("missing_key", "hearing_id", "f.csv", 4),
        ("not_y_or_n", "adjourned", "f.csv", 5),
        ("malformed_row", "*", "f.csv", 6),
    }
    assert q.select("run_id").distinct().collect()[0][0] == "run-1"
    assert state_counts(out) == {"read": 6, "loaded": 1, "quarantined": 5, "duplicate": 0, "superseded": 0}


def test_a_key_reused_with_different_content_quarantines_every_version(spark):
    df = landed(spark, "hmcts/hearings", [HEARING, {**HEARING, "adjourned": "N"}, HEARING])
    out = df.transform(bronze.classify("hmcts/hearings"))
    assert sorted(r[bronze.STATUS] for r in out.collect()) == ["duplicate", "quarantined", "quarantined"]
    rules = {r["rule"] for r in out.transform(bronze.quarantined("hmcts/hearings", "r")).collect()}
    assert rules == {"duplicate_key"}


def test_monthly_resubmissions_keep_the_latest_uniqmonthid(spark):
    base = {
        "ServiceRequestId": "SR1",
        "LocalPatientId": "LP1",
        "OrgIDProv": "RXA",
        "ReferralRequestReceivedDate": "2016-05-03",
        "SourceOfReferralMH": "A1",
        "ServTeamTypeRefToMH": "A05",
    }
    df = landed(
        spark,
        "mhsds/mhs101_referral",
        [
            {**base, "UniqMonthID": "1393"},
            {**base, "UniqMonthID": "1399", "ServDischDate": "2016-10-20"},
            {**base, "UniqMonthID": "1401", "ServDischDate": "2016-10-3x"},  # latest, but unusable
            {**base, "ServiceRequestId": "SR2", "UniqMonthID": "1393"},
        ],
    )
    out = df.transform(bronze.classify("mhsds/mhs101_referral"))
    got = sorted((r["ServiceRequestId"], r["UniqMonthID"], r[bronze.STATUS]) for r in out.collect())
    assert got == [
        ("SR1", "1393", "superseded"),
        ("SR1", "1399", "loaded"),
        ("SR1", "1401", "quarantined"),
        ("SR2", "1393", "loaded"),
    ]
    typed = out.transform(bronze.typed("mhsds/mhs101_referral")).filter(F.col("ServiceRequestId") == "SR1")
    assert typed.select("ServDischDate", "UniqMonthID").collect()[0].asDict() == {
        "ServDischDate": dt.date(2016, 10, 20),
        "UniqMonthID": 1399,
    }


def test_bad_identity_values_become_null_and_the_row_is_kept_typed(spark):
    row = {
        "AEKEY": "A1",
        "NEWNHSNO": "9434765918",
        "DOB": "1900-01-01",
        "SEX": "1",
        "HOMEADD": "ls62ab",
        "ARRIVALDATE": "2017-03-04",
        "ARRIVALTIME": "0130",
        "PROCODE3": "RR8",
        "AEATTENDCAT": "1",
        "AEATTENDDISP": "02",
        "AEPATGROUP": "60",
        "DIAG_01": "35",
    }
    df = landed(spark, "hes_ae", [row])
    typed = df.transform(bronze.classify("hes_ae")).transform(bronze.typed("hes_ae")).drop(SOURCE_FILE, LINE)
    expected_schema = T.StructType(
        [T.StructField(c, T.DateType() if c in ("DOB", "ARRIVALDATE") else T.StringType()) for c in TABLES["hes_ae"]]
    )
    expected = spark.createDataFrame(
        [("A1", None, None, "1", "LS6 2AB", dt.date(2017, 3, 4), "0130", "RR8", "1", "02", "60", "35")], expected_schema
    )
    assert_df_equality(typed, expected, ignore_nullable=True)


def test_onward_referral_lists_and_mh_needs_are_checked(spark):
    base = {
        "referral_id": "R1",
        "site_code": "LD01",
        "referral_date": "2017-02-01",
        "index_offence_date": "2017-02-01",
        "point_of_contact": "police_custody",
        "pathway": "adult",
        "sex": "M",
        "consent": "Y",
        "declined": "N",
        "mh_needs": "1",
        "onward_referrals": "gp;iapt",
    }
    df = landed(
        spark,
        "ld_referrals",
        [
            base,
            {**base, "referral_id": "R2", "onward_referrals": "gp;acupuncture"},
            {**base, "referral_id": "R3", "mh_needs": "9"},
        ],
    )
    assert states(df.transform(bronze.classify("ld_referrals")), "referral_id") == {
        "R1": "loaded",
        "R2": "quarantined",
        "R3": "quarantined",
    }


def test_reconciliation_that_does_not_balance_stops_with_one_line_naming_table_and_counts():
    states = {"read": 4, "loaded": 2, "quarantined": 1, "duplicate": 1, "superseded": 0}  # as state_counts gives them
    with pytest.raises(InputError) as err:
        bronze.reconciled("hmcts/hearings", 5, states)
    assert str(err.value) == (
        "table hmcts/hearings: 5 records in the raw files but 4 rows accounted for (loaded 2, "
        "quarantined 1, duplicate 1, superseded 0, erased 0): rows were lost or invented on the way to bronze"
    )


def test_balanced_reconciliation_reports_the_records_counted_in_the_raw_files():
    states = {"read": 4, "loaded": 2, "quarantined": 1, "duplicate": 1, "superseded": 0}
    assert bronze.reconciled("hmcts/hearings", 4, states) == states | {"erased": 0}
    assert bronze.reconciled("hmcts/hearings", 6, states, erased=2) == states | {"read": 6, "erased": 2}


def test_malformed_rows_with_equal_values_are_each_quarantined_not_duplicates(spark):
    # A field over the csv size limit leaves a row with no values; two such rows are not copies.
    unreadable = {
        "hearing_id": None,
        "hearing_date": None,
        "hearing_type": None,
        "case_id": None,
        "adjourned": None,
        "fault": "malformed CSV (field larger than field limit (131072))",
    }
    garbled = {**HEARING, "hearing_id": "H2", "fault": "bytes that are not UTF-8"}
    df = landed(spark, "hmcts/hearings", [unreadable, HEARING, unreadable, garbled, garbled])
    out = df.transform(bronze.classify("hmcts/hearings"))
    assert sorted((r[LINE], r[bronze.STATUS]) for r in out.collect()) == [
        (2, "quarantined"),
        (3, "loaded"),
        (4, "quarantined"),
        (5, "quarantined"),
        (6, "quarantined"),
    ]
    assert out.transform(bronze.quarantined("hmcts/hearings", "r")).count() == 4


def test_new_rows_reclassify_only_the_keys_they_hold_as_the_whole_table_would(spark):
    table = "hmcts/hearings"
    no_key = {**HEARING, "hearing_id": None}
    earlier = [HEARING, {**HEARING, "hearing_id": "H2"}, {**HEARING, "hearing_id": "H3"}, no_key]
    new = [
        {**HEARING, "file": "g.csv"},  # H1 sent again: a copy
        {**HEARING, "hearing_id": "H2", "adjourned": "N", "file": "g.csv"},  # H2 reused: a conflict
        {**HEARING, "hearing_id": "H4", "file": "g.csv"},  # a new hearing
        {**no_key, "file": "g.csv"},  # a copy of the row without a key
    ]
    landing = landed(spark, table, earlier + new)
    keys = landed(spark, table, new).transform(bronze.key_values(table))
    assert sorted(r["hearing_id"] or "" for r in keys.collect()) == ["", "H1", "H2", "H4"]

    after = landing.transform(bronze.holding(table, keys)).transform(bronze.classify(table))
    before = landed(spark, table, earlier).transform(bronze.holding(table, keys)).transform(bronze.classify(table))
    got = sorted((r["hearing_id"] or "", r[SOURCE_FILE], r[bronze.STATUS]) for r in after.collect())
    assert got == [
        ("", "f.csv", "quarantined"),
        ("", "g.csv", "duplicate"),
        ("H1", "f.csv", "loaded"),
        ("H1", "g.csv", "duplicate"),
        ("H2", "f.csv", "quarantined"),
        ("H2", "g.csv", "quarantined"),
        ("H4", "g.csv", "loaded"),
    ]  # H3 is not read again
    moved = bronze.changed_states(state_counts(after), state_counts(before))
    assert moved == {"loaded": 0, "quarantined": 2, "duplicate": 2, "superseded": 0}
    # The whole table classified at once gives every touched row the same state.
    whole = landing.transform(bronze.classify(table)).transform(bronze.holding(table, keys))
    assert sorted((r["hearing_id"] or "", r[SOURCE_FILE], r[bronze.STATUS]) for r in whole.collect()) == got


def test_a_quarantined_row_is_found_by_its_key_in_its_record(spark):
    table = "pnc/offences"
    rows = landed(
        spark, table, [{"offence_id": "O1", "offence_category": "ZZ"}, {"offence_id": None, "pnc_id": "1990/1Q"}]
    )
    classified = rows.transform(bronze.classify(table))
    record_keys = classified.transform(bronze.quarantined(table, "r")).select(bronze.quarantine_key(table))
    landed_keys = rows.select(bronze.key_signature(table))
    assert sorted(r[0] for r in record_keys.collect()) == sorted(r[0] for r in landed_keys.collect())
    assert sorted(r[0] for r in landed_keys.collect()) == ['["O1"]', "[null]"]


def test_bronze_constraints_refuse_a_row_without_its_key_or_with_a_date_out_of_range(spark, tmp_path):
    from ld_spark import catalog

    table = "hmcts/hearings"
    assert bronze.constraints(table) == {
        "hearing_id_present": "`hearing_id` IS NOT NULL",
        "hearing_date_plausible": "`hearing_date` IS NULL OR `hearing_date` BETWEEN DATE'1900-01-01' AND DATE'2099-12-31'",
    }
    rows = landed(spark, table, [HEARING, {**HEARING, "hearing_id": "H2", "hearing_date": "2107-01-02"}])
    classified = rows.transform(bronze.classify(table))
    assert states(classified, "hearing_id") == {"H1": "loaded", "H2": "quarantined"}
    typed = classified.transform(bronze.typed(table))
    catalog.write(typed, tmp_path, catalog.bronze(table), checks=bronze.constraints(table))
    for bad in ({"hearing_date": "2107-01-02"}, {"hearing_id": None}):
        # As a bug past the rules would write them: typed directly, not classified.
        row = landed(spark, table, [{**HEARING, "hearing_id": "H3", **bad}]).withColumn(bronze.STATUS, F.lit("loaded"))
        with pytest.raises(Exception, match="CHECK constraint|violate"):
            catalog.append(row.transform(bronze.typed(table)), tmp_path, catalog.bronze(table))
        # The constraints are made in the commit that makes the table, so its first rows are held to them too.
        with pytest.raises(Exception, match="CHECK constraint|violate"):
            catalog.write(
                row.transform(bronze.typed(table)),
                tmp_path / "fresh",
                catalog.bronze(table),
                checks=bronze.constraints(table),
            )
    assert catalog.read(spark, tmp_path, catalog.bronze(table)).count() == 1


def test_a_court_case_without_its_offence_date_is_quarantined_not_loaded_and_left_out_unseen(spark):
    # The justice stage places a case, and finds its PNC offence, by its offence date alone: without
    # one the case would be loaded, then left out of every court table with no count anywhere.
    table = "hmcts/cases"
    case = {
        "case_id": "C1",
        "source_system": "LIBRA",
        "offence_date": "2017-03-01",
        "charge_date": "2017-03-02",
        "first_hearing_date": "2017-03-20",
    }
    rows = landed(spark, table, [case, {**case, "case_id": "C2", "offence_date": None}])
    classified = rows.transform(bronze.classify(table))
    assert states(classified, "case_id") == {"C1": "loaded", "C2": "quarantined"}
    assert [r[0] for r in classified.filter("case_id = 'C2'").select(bronze.FAILURES).collect()] == [
        ["missing_value:offence_date"]
    ]
    assert bronze.constraints(table)["offence_date_present"] == "`offence_date` IS NOT NULL"
