"""Linkage pieces on tiny hand-built frames with known answers."""
from __future__ import annotations

import hashlib
import hmac

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from ld_spark import linkage
from ld_spark.errors import InputError

IDENTITY_SCHEMA = T.StructType([T.StructField(c, T.StringType()) for c in [linkage.UNIQUE_ID, *linkage.IDENTITY]])


def tuples(spark, rows):
    """rows: (unique_id, {identity column: value})."""
    return spark.createDataFrame([(uid, *[ident.get(c) for c in linkage.IDENTITY]) for uid, ident in rows],
                                 IDENTITY_SCHEMA)


def test_each_source_maps_to_the_common_identity_layout(spark):
    hes = spark.createDataFrame([("A1", "9434765919", "1980-05-06", "2", "LS6 2AB")],
                                "AEKEY string, NEWNHSNO string, DOB string, SEX string, HOMEADD string")
    got = hes.transform(linkage.identity_records("hes_ae"))
    expected = spark.createDataFrame(
        [("hes_ae", "A1", None, None, None, "1980-05-06", "F", "LS6 2AB", "9434765919", None, None)],
        T.StructType([T.StructField("source_table", T.StringType(), False), T.StructField("record_key", T.StringType())]
                     + [T.StructField(c, T.StringType()) for c in linkage.IDENTITY]))
    assert_df_equality(got, expected, ignore_nullable=True)

    ndtms = spark.createDataFrame([("E1", "AG1", "C9", "J", "S", "1980-05-06", "M", "LS6 2")],
                                  "EPISODID string, AGNCY string, CLIENTID string, FINITIAL string, SINITIAL string, "
                                  "DOB string, SEX string, PC string")
    row = ndtms.transform(linkage.identity_records("ndtms.episodes")).first()
    assert (row["initials"], row["client"], row["postcode"], row["forename"]) == ("JS", "AG1|C9", "LS6 2", None)


def test_thin_records_are_never_merged_for_sharing_nulls(spark):
    records = spark.createDataFrame([
        ("hes_ae", "A1", None, None, None, None, "M", None, None, None, None),
        ("hes_ae", "A2", None, None, None, None, "M", None, None, None, None),
        ("hes_ae", "A3", None, None, None, "1980-05-06", "M", "LS6 2AB", "9434765919", None, None),
        ("hes_ae", "A4", None, None, None, "1980-05-06", "M", "LS6 2AB", "9434765919", None, None),
    ], T.StructType([T.StructField("source_table", T.StringType()), T.StructField("record_key", T.StringType())]
                    + [T.StructField(c, T.StringType()) for c in linkage.IDENTITY]))
    ids = {r["record_key"]: r[linkage.UNIQUE_ID] for r in records.transform(linkage.with_tuple_id).collect()}
    assert ids["A1"] != ids["A2"]
    assert ids["A3"] == ids["A4"]


def test_deterministic_matches_need_nhs_with_dob_but_pnc_or_client_alone(spark):
    t = tuples(spark, [
        ("a", {"nhs": "9434765919", "dob": "1980-05-06"}),
        ("b", {"nhs": "9434765919", "dob": "1980-05-06", "postcode": "LS6 2AB"}),
        ("c", {"nhs": "9434765919", "dob": "1975-01-01"}),      # a shared NHS number: not the same person
        ("d", {"pnc": "2004/7273074A", "dob": "1980-05-06"}),
        ("e", {"pnc": "2004/7273074A"}),
        ("f", {"client": "AG1|C9"}),
        ("g", {"client": "AG1|C9"}),
    ])
    edges = {tuple(sorted((r["id_l"], r["id_r"]))) for r in linkage.deterministic_edges(t).collect()}
    assert edges == {("a", "b"), ("d", "e"), ("f", "g")}


def test_connected_components_label_each_vertex_with_its_smallest_member(spark):
    vertices = spark.createDataFrame([(v,) for v in "abcdefg"], "unique_id string")
    edges = spark.createDataFrame([("c", "b"), ("b", "d"), ("d", "a"), ("f", "e")], "id_l string, id_r string")
    got = {r["unique_id"]: r["component"] for r in linkage.connected_components(vertices, edges).collect()}
    assert got == {"a": "a", "b": "a", "c": "a", "d": "a", "e": "e", "f": "e", "g": "g"}


def test_pairwise_quality_counts_pairs_with_at_least_one_record_in_the_table(spark):
    # Person X: r1, r2 (T1) and r3 (T2); person Y: r4 (T2). Predicted: {r1, r2} and {r3, r4}.
    linked = spark.createDataFrame([("T1", "r1", "A"), ("T1", "r2", "A"), ("T2", "r3", "B"), ("T2", "r4", "B")],
                                   "source_table string, record_key string, person_key string")
    truth = spark.createDataFrame([("T1", "r1", "X"), ("T1", "r2", "X"), ("T2", "r3", "X"), ("T2", "r4", "Y")],
                                  "source_table string, record_key string, person_id string")
    q = {r["source_table"]: r.asDict() for r in linkage.pairwise_quality(linkage.quality_cells(linked, truth)).collect()}
    # T1: predicted {r1,r2}; true {r1,r2},{r1,r3},{r2,r3}; correct {r1,r2}.
    assert (q["T1"]["precision"], q["T1"]["recall"]) == (1.0, pytest.approx(1 / 3))
    # T2: predicted {r3,r4} is wrong; true {r1,r3},{r2,r3} were missed.
    assert (q["T2"]["precision"], q["T2"]["recall"]) == (0.0, 0.0)
    assert (q["T1"]["n_records"], q["T1"]["n_persons"]) == (2, 1)


def test_person_key_is_an_hmac_under_the_run_key(spark):
    components = spark.createDataFrame([("u1", "c1"), ("u2", "c1"), ("u3", "c3")], "unique_id string, component string")
    keyed = {r["unique_id"]: r["person_key"] for r in components.transform(linkage.with_person_key(b"k1")).collect()}
    assert keyed["u1"] == keyed["u2"] != keyed["u3"]
    assert keyed["u1"] == hmac.new(b"k1", b"c1", hashlib.sha256).hexdigest()
    assert keyed["u1"] != hashlib.sha256(b"c1").hexdigest()
    other = components.transform(linkage.with_person_key(b"k2")).first()["person_key"]
    assert other != keyed["u1"]


def test_key_comes_from_environment_then_file_and_missing_key_is_a_clear_error(config, tmp_path, monkeypatch):
    conf = config.linkage.model_copy(update={"key_file": str(tmp_path / "key"), "create_key_if_missing": False})
    monkeypatch.delenv(conf.key_env, raising=False)
    with pytest.raises(InputError, match="no pseudonymisation key"):
        linkage.load_key(conf)
    (tmp_path / "key").write_text("from-file\n")
    assert linkage.load_key(conf) == b"from-file"
    monkeypatch.setenv(conf.key_env, "from-env")
    assert linkage.load_key(conf) == b"from-env"


def test_embedded_default_creates_a_private_key_file(config, tmp_path, monkeypatch):
    conf = config.linkage.model_copy(update={"key_file": str(tmp_path / "key"), "create_key_if_missing": True})
    monkeypatch.delenv(conf.key_env, raising=False)
    key = linkage.load_key(conf)
    assert len(key) == 64 and (tmp_path / "key").stat().st_mode & 0o077 == 0
    assert linkage.load_key(conf) == key


def test_event_rows_reach_their_person_through_parent_records(spark):
    linked = spark.createDataFrame([("mhsds.mhs001_mpi", "RXA|LP1", "p1"), ("mhsds.mhs001_mpi", "RXB|LP2", "p2")],
                                   "source_table string, record_key string, person_key string")
    referrals = spark.createDataFrame([("SR1", "RXA", "LP1"), ("SR2", "RXB", "LP2"), ("SR3", "RXC", "LP9")],
                                      "ServiceRequestId string, OrgIDProv string, LocalPatientId string")
    refs = referrals.transform(linkage.event_record_person("mhsds/mhs101_referral", linked))
    contacts = spark.createDataFrame([("CC1", "SR2"), ("CC2", "SR3")], "CareContactId string, ServiceRequestId string")
    got = contacts.transform(linkage.event_record_person("mhsds/mhs201_care_contact", linked.unionByName(refs)))
    assert {(r["source_table"], r["record_key"], r["person_key"]) for r in refs.unionByName(got).collect()} == {
        ("mhsds.mhs101_referral", "SR1", "p1"), ("mhsds.mhs101_referral", "SR2", "p2"),
        ("mhsds.mhs101_referral", "SR3", None),  # its patient was not loaded: kept, unlinked
        ("mhsds.mhs201_care_contact", "CC1", "p2"), ("mhsds.mhs201_care_contact", "CC2", None),
    }
