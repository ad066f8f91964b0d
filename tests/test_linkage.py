"""Linkage pieces on tiny hand-built frames with known answers."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from ld_spark import link
from ld_spark.errors import InputError

IDENTITY_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in [link.identity.UNIQUE_ID, *link.identity.IDENTITY]]
)


def tuples(spark, rows):
    """rows: (unique_id, {identity column: value})."""
    return spark.createDataFrame(
        [(uid, *[ident.get(c) for c in link.identity.IDENTITY]) for uid, ident in rows], IDENTITY_SCHEMA
    )


def test_each_source_maps_to_the_common_identity_layout(spark):
    hes = spark.createDataFrame(
        [("A1", "9434765919", "1980-05-06", "2", "LS6 2AB")],
        "AEKEY string, NEWNHSNO string, DOB string, SEX string, HOMEADD string",
    )
    got = hes.transform(link.identity.identity_records("hes_ae"))
    expected = spark.createDataFrame(
        [("hes_ae", "A1", None, None, None, "1980-05-06", "F", "LS6 2AB", "9434765919", None, None)],
        T.StructType(
            [T.StructField("source_table", T.StringType(), False), T.StructField("record_key", T.StringType())]
            + [T.StructField(c, T.StringType()) for c in link.identity.IDENTITY]
        ),
    )
    assert_df_equality(got, expected, ignore_nullable=True)

    ndtms = spark.createDataFrame(
        [("E1", "AG1", "C9", "J", "S", "1980-05-06", "M", "LS6 2")],
        "EPISODID string, AGNCY string, CLIENTID string, FINITIAL string, SINITIAL string, "
        "DOB string, SEX string, PC string",
    )
    row = ndtms.transform(link.identity.identity_records("ndtms.episodes")).first()
    assert (row["initials"], row["client"], row["postcode"], row["forename"]) == ("JS", "AG1|C9", "LS6 2", None)


def test_an_ndtms_episode_without_a_client_id_has_no_client_and_links_no_one_by_it(spark):
    # Two people's episodes at one agency, CLIENTID blank (and one with the agency blank too):
    # "AG1" alone would be a strong identifier they share, merging them and everyone they link to.
    ndtms = spark.createDataFrame(
        [
            ("E1", "AG1", None, "J", "S", "1985-02-03", "M", "LS6 2"),
            ("E2", "AG1", None, "A", "B", "1979-11-20", "F", "BD1 3"),
            ("E3", None, "C9", "A", "B", "1979-11-20", "F", "BD1 3"),
            ("E4", None, None, "K", "L", "1990-01-01", "M", "LS1 1"),
        ],
        "EPISODID string, AGNCY string, CLIENTID string, FINITIAL string, SINITIAL string, "
        "DOB string, SEX string, PC string",
    )
    records = ndtms.transform(link.identity.identity_records("ndtms.episodes")).transform(link.identity.with_tuple_id)
    assert [r["client"] for r in records.orderBy("record_key").collect()] == [None] * 4
    tuples = link.identity.identity_tuples(records)
    assert link.deterministic.deterministic_edges(tuples).count() == 0


def test_thin_records_are_never_merged_for_sharing_nulls(spark):
    records = spark.createDataFrame(
        [
            ("hes_ae", "A1", None, None, None, None, "M", None, None, None, None),
            ("hes_ae", "A2", None, None, None, None, "M", None, None, None, None),
            ("hes_ae", "A3", None, None, None, "1980-05-06", "M", "LS6 2AB", "9434765919", None, None),
            ("hes_ae", "A4", None, None, None, "1980-05-06", "M", "LS6 2AB", "9434765919", None, None),
        ],
        T.StructType(
            [T.StructField("source_table", T.StringType()), T.StructField("record_key", T.StringType())]
            + [T.StructField(c, T.StringType()) for c in link.identity.IDENTITY]
        ),
    )
    ids = {
        r["record_key"]: r[link.identity.UNIQUE_ID] for r in records.transform(link.identity.with_tuple_id).collect()
    }
    assert ids["A1"] != ids["A2"]
    assert ids["A3"] == ids["A4"]


def test_deterministic_matches_need_nhs_with_dob_but_pnc_or_client_alone(spark):
    t = tuples(
        spark,
        [
            ("a", {"nhs": "9434765919", "dob": "1980-05-06"}),
            ("b", {"nhs": "9434765919", "dob": "1980-05-06", "postcode": "LS6 2AB"}),
            ("c", {"nhs": "9434765919", "dob": "1975-01-01"}),  # a shared NHS number: not the same person
            ("d", {"pnc": "2004/7273074A", "dob": "1980-05-06"}),
            ("e", {"pnc": "2004/7273074A"}),
            ("f", {"client": "AG1|C9"}),
            ("g", {"client": "AG1|C9"}),
        ],
    )
    edges = {tuple(sorted((r["id_l"], r["id_r"]))) for r in link.deterministic.deterministic_edges(t).collect()}
    assert edges == {("a", "b"), ("d", "e"), ("f", "g")}


def test_connected_components_label_each_vertex_with_its_smallest_member(spark):
    vertices = spark.createDataFrame([(v,) for v in "abcdefg"], "unique_id string")
    edges = spark.createDataFrame([("c", "b"), ("b", "d"), ("d", "a"), ("f", "e")], "id_l string, id_r string")
    got = {r["unique_id"]: r["component"] for r in link.components.connected_components(vertices, edges).collect()}
    assert got == {"a": "a", "b": "a", "c": "a", "d": "a", "e": "e", "f": "e", "g": "g"}


TWINS = [
    ("hes_a", {"dob": "1980-05-06", "sex": "M", "postcode": "LS6 2AB", "nhs": "9434765919"}),
    ("hes_b", {"dob": "1980-05-06", "sex": "M", "postcode": "LS6 2AB", "nhs": "4010232137"}),
    ("pnc_a", {"forename": "JOHN", "surname": "SMITH", "dob": "1980-05-06", "postcode": "LS6 2AB", "pnc": "P1"}),
    ("pnc_a2", {"forename": "JOHN", "surname": "SMITH", "dob": "1980-05-06", "pnc": "P1"}),
    ("ld_b", {"forename": "JAMES", "surname": "SMITH", "dob": "1980-05-06", "nhs": "4010232137", "pnc": "P2"}),
    ("pnc_b", {"forename": "JAMES", "surname": "SMITH", "dob": "1980-05-06", "postcode": "LS6 2AB", "pnc": "P2"}),
    # a stranger's component, with one NHS number under two dates of birth (a shared number): kept
    ("s1", {"dob": "1990-01-01", "nhs": "5555555555"}),
    ("s2", {"dob": "1991-01-01", "nhs": "5555555555"}),
]


def _twin_edges(spark):
    """Same-sex twins at one address: each twin's PNC records also match the other's HES record
    (no names there), the bridge that made them one person."""
    inf = float("inf")
    return spark.createDataFrame(
        [
            ("pnc_a", "hes_a", 14.0),
            ("pnc_a", "hes_b", 12.5),  # the bridge: a little weaker than pnc_a's own twin
            ("pnc_b", "hes_b", 14.0),
            ("pnc_b", "hes_a", 14.0),  # a tie: pnc_b's deterministic edge to ld_b decides
            ("pnc_a2", "pnc_a", inf),
            ("ld_b", "pnc_b", inf),
            ("s1", "s2", 20.0),
        ],
        "id_l string, id_r string, match_weight double",
    )


def test_a_component_holding_two_nhs_numbers_with_one_date_of_birth_is_split(spark):
    t = tuples(spark, TWINS)
    edges = _twin_edges(spark)
    labels = link.components.connected_components(t.select(link.identity.UNIQUE_ID), edges)
    assert {r["component"] for r in labels.collect()} == {"hes_a", "s1"}  # twins bridged into one
    assert [r["component"] for r in link.components.conflicted(labels, t).collect()] == ["hes_a"]
    got = link.components.split_conflicts(labels, t, edges)
    expected = spark.createDataFrame(
        [
            ("hes_a", "hes_a"),
            ("pnc_a", "hes_a"),
            ("pnc_a2", "hes_a"),
            ("hes_b", "hes_b"),
            ("ld_b", "hes_b"),
            ("pnc_b", "hes_b"),
            ("s1", "s1"),
            ("s2", "s1"),
        ],
        link.components.SPLIT_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("on", ["spark", "duckdb"])
def test_quality_counts_pairs_with_at_least_one_record_in_the_table(spark, on):
    # Person X: r1, r2 (T1) and r3 (T2); person Y: r4 (T2). Predicted: {r1, r2} and {r3, r4}.
    linked = spark.createDataFrame(
        [("T1", "r1", "A"), ("T1", "r2", "A"), ("T2", "r3", "B"), ("T2", "r4", "B")],
        "source_table string, record_key string, person_key string",
    )
    truth = spark.createDataFrame(
        [("T1", "r1", "X"), ("T1", "r2", "X"), ("T2", "r3", "X"), ("T2", "r4", "Y")],
        "source_table string, record_key string, person_id string",
    )
    q = {r["source_table"]: r for r in link.quality.pairwise_rows(linked, truth, on)}
    # T1: predicted {r1,r2}; true {r1,r2},{r1,r3},{r2,r3}; correct {r1,r2}.
    assert (q["T1"]["precision"], q["T1"]["recall"]) == (1.0, pytest.approx(1 / 3))
    # T2: predicted {r3,r4} is wrong; true {r1,r3},{r2,r3} were missed.
    assert (q["T2"]["precision"], q["T2"]["recall"]) == (0.0, 0.0)
    assert (q["T1"]["n_records"], q["T1"]["n_persons"]) == (2, 1)


@pytest.mark.parametrize("on", ["spark", "duckdb"])
def test_quality_counts_no_pair_among_records_without_a_person(spark, on):
    # r1, r2, r3 are all person X; only r1 was given a person. The two without are not one cluster.
    linked = spark.createDataFrame(
        [("T1", "r1", "A"), ("T1", "r2", None), ("T1", "r3", None)],
        "source_table string, record_key string, person_key string",
    )
    truth = spark.createDataFrame(
        [("T1", f"r{i}", "X") for i in (1, 2, 3)], "source_table string, record_key string, person_id string"
    )
    (q,) = link.quality.pairwise_rows(linked, truth, on)
    # Predicted: no pair (precision undefined); true: 3 pairs, none found.
    assert (q["n_records"], q["n_persons"], q["precision"], q["recall"], q["f1"]) == (3, 1, None, 0.0, None)


def test_person_key_is_an_hmac_under_the_run_key(spark):
    components = spark.createDataFrame([("u1", "c1"), ("u2", "c1"), ("u3", "c3")], "unique_id string, component string")
    keyed = {r["unique_id"]: r["person_key"] for r in components.transform(link.key.with_person_key(b"k1")).collect()}
    assert keyed["u1"] == keyed["u2"] != keyed["u3"]
    assert keyed["u1"] == hmac.new(b"k1", b"c1", hashlib.sha256).hexdigest()
    assert keyed["u1"] != hashlib.sha256(b"c1").hexdigest()
    other = components.transform(link.key.with_person_key(b"k2")).first()["person_key"]
    assert other != keyed["u1"]


FILE_KEY = "f" * 64
ENV_KEY = "e" * 32


def _key_conf(config, tmp_path, create: bool):
    """The test config's linkage section with its key file in tmp_path."""
    conf = config.linkage.model_copy(update={"key_file": str(tmp_path / "key"), "create_key_if_missing": create})
    return conf, tmp_path / "key"


def _private_key_file(path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def test_key_comes_from_environment_then_file_and_missing_key_is_a_clear_error(config, tmp_path, monkeypatch):
    conf, path = _key_conf(config, tmp_path, create=False)
    monkeypatch.delenv(conf.key_env, raising=False)
    with pytest.raises(InputError, match="no pseudonymisation key"):
        link.key.load_key(conf, path, "local[2]")
    _private_key_file(path, FILE_KEY + "\n")
    assert link.key.load_key(conf, path, "local[2]") == FILE_KEY.encode()
    monkeypatch.setenv(conf.key_env, ENV_KEY)
    assert link.key.load_key(conf, path, "local[2]") == ENV_KEY.encode()


@pytest.mark.parametrize("where", ["environment", "file"])
@pytest.mark.parametrize("key", ["", "@", "@" * 31])
def test_key_under_32_bytes_is_refused_without_showing_it(config, tmp_path, monkeypatch, where, key):
    conf, path = _key_conf(config, tmp_path, create=False)
    monkeypatch.delenv(conf.key_env, raising=False)
    if where == "environment" and key:
        monkeypatch.setenv(conf.key_env, key)
        _private_key_file(path, FILE_KEY)  # the environment wins even over a good file
    else:
        _private_key_file(path, key + "\n")
    with pytest.raises(InputError, match=f"too short: .* holds {len(key)} bytes, at least 32") as err:
        link.key.load_key(conf, path, "local[2]")
    assert "\n" not in str(err.value)
    if key:
        assert key not in str(err.value).replace(str(tmp_path), "")


def test_key_of_exactly_32_bytes_is_accepted(config, tmp_path, monkeypatch):
    conf, path = _key_conf(config, tmp_path, create=False)
    monkeypatch.setenv(conf.key_env, "k" * 32)
    assert link.key.load_key(conf, path, "local[2]") == b"k" * 32


def test_embedded_default_creates_a_private_key_file_on_a_local_master(config, tmp_path, monkeypatch, capsys):
    conf, path = _key_conf(config, tmp_path, create=True)
    monkeypatch.delenv(conf.key_env, raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    key = link.key.load_key(conf, path, "local[2]")
    assert len(key) == 64 and int(key, 16) >= 0  # 32 random bytes as hex, the format of every key file so far
    assert path.stat().st_mode & 0o777 == 0o600
    assert link.key.load_key(conf, path, "local[2]") == key
    printed = capsys.readouterr().out
    assert f"created a local pseudonymisation key in {path}" in printed and key.decode() not in printed


def test_key_file_is_created_exclusively_and_private_from_the_first_byte(config, tmp_path, monkeypatch):
    """Not written then chmod-ed (readable by others in between), and never over a key that
    another process made a moment earlier."""
    import os

    conf, path = _key_conf(config, tmp_path, create=True)
    monkeypatch.delenv(conf.key_env, raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    opened = []
    real_open = os.open

    def recording_open(file, flags, mode=0o777, **kwargs):
        opened.append((str(file), flags, mode))
        return real_open(file, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    link.key.load_key(conf, path, "local[2]")
    creations = [(flags, mode) for file, flags, mode in opened if file == str(path) and flags & os.O_CREAT]
    assert creations == [(os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)]


@pytest.mark.parametrize(
    "master, spark_submit",
    [("yarn", False), ("spark://127.0.0.1:7077", False), ("k8s://https://cluster:443", False), ("local[*]", True)],
)
def test_key_is_never_created_on_a_cluster_or_under_spark_submit(config, tmp_path, monkeypatch, master, spark_submit):
    conf, path = _key_conf(config, tmp_path, create=True)
    monkeypatch.delenv(conf.key_env, raising=False)
    if spark_submit:
        monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")
    else:
        monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    with pytest.raises(InputError, match="no pseudonymisation key"):
        link.key.load_key(conf, path, master)
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_key_file_open_to_group_or_others_is_refused(config, tmp_path, monkeypatch, mode):
    conf, path = _key_conf(config, tmp_path, create=True)
    monkeypatch.delenv(conf.key_env, raising=False)
    path.write_text(FILE_KEY)
    path.chmod(mode)
    with pytest.raises(InputError, match=f"open to group or others \\(mode {mode:o}\\): chmod 600"):
        link.key.load_key(conf, path, "local[2]")


def test_relative_key_file_is_beside_conf_wherever_the_run_starts(config, tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "conf").mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.setenv("LD_SPARK_CONF_DIR", str(project / "conf"))
    monkeypatch.chdir(elsewhere)
    conf = config.linkage.model_copy(update={"key_file": ".ld_spark_key"})
    assert link.key.key_path(conf) == project / ".ld_spark_key"
    absolute = config.linkage.model_copy(update={"key_file": str(tmp_path / "keys" / "k")})
    assert link.key.key_path(absolute) == tmp_path / "keys" / "k"


def test_default_key_file_is_the_one_make_run_has_always_used(config, monkeypatch):
    from pathlib import Path

    monkeypatch.delenv("LD_SPARK_CONF_DIR", raising=False)
    assert link.key.key_path(config.linkage) == Path(__file__).resolve().parents[1] / ".ld_spark_key"


def test_event_rows_reach_their_person_through_parent_records(spark):
    """Referrals reach a patient (MPI record), care contacts a referral: one set of parent rows
    serves every linkage. SR3's patient and CC3's referral were never loaded: kept, unlinked."""
    columns = {
        "mhsds/mhs101_referral": "ServiceRequestId string, OrgIDProv string, LocalPatientId string",
        "mhsds/mhs401_mha_period": "MHActLegalStatusClassPeriodId string, OrgIDProv string, LocalPatientId string",
        "mhsds/mhs201_care_contact": "CareContactId string, ServiceRequestId string",
        "iapt/ids101_referral": "ServiceRequestId string, OrgIDProv string, LocalPatientId string",
        "iapt/ids201_care_contact": "CareContactId string, ServiceRequestId string",
        "ndtms/modalities": "MODID string, EPISODID string",
        "ndtms/top": "TOPID string, EPISODID string",
        "hmcts/hearings": "hearing_id string, case_id string",
    }
    rows = {
        "mhsds/mhs101_referral": [("SR1", "RXA", "LP1"), ("SR2", "RXB", "LP2"), ("SR3", "RXC", "LP9")],
        "mhsds/mhs201_care_contact": [("CC1", "SR2"), ("CC2", "SR3"), ("CC3", "SR9")],
        "hmcts/hearings": [("H1", "C1")],
    }
    bronze = {table: spark.createDataFrame(rows.get(table, []), schema) for table, schema in columns.items()}
    parents = link.events.event_parents(bronze)

    def people(identity: list[tuple]) -> set[tuple]:
        linked = spark.createDataFrame(identity, "source_table string, record_key string, person_key string")
        got = link.events.record_person(linked, parents).collect()
        return {(r["source_table"], r["record_key"], r["person_key"]) for r in got}

    identity = [
        ("mhsds.mhs001_mpi", "RXA|LP1", "p1"),
        ("mhsds.mhs001_mpi", "RXB|LP2", "p2"),
        ("hmcts.cases", "C1", "p1"),
    ]
    assert people(identity) == {
        *identity,
        ("mhsds.mhs101_referral", "SR1", "p1"),
        ("mhsds.mhs101_referral", "SR2", "p2"),
        ("mhsds.mhs101_referral", "SR3", None),  # its patient was not loaded
        ("mhsds.mhs201_care_contact", "CC1", "p2"),
        ("mhsds.mhs201_care_contact", "CC2", None),
        ("mhsds.mhs201_care_contact", "CC3", None),  # its referral was not loaded
        ("hmcts.hearings", "H1", "p1"),
    }
    # Another linkage (a threshold's) puts RXB|LP2 with p1: its referral and contact follow.
    other = [("mhsds.mhs001_mpi", "RXA|LP1", "p1"), ("mhsds.mhs001_mpi", "RXB|LP2", "p1"), ("hmcts.cases", "C1", "p3")]
    assert {r for r in people(other) if r[2] is not None} == {
        *other,
        ("mhsds.mhs101_referral", "SR1", "p1"),
        ("mhsds.mhs101_referral", "SR2", "p1"),
        ("mhsds.mhs201_care_contact", "CC1", "p1"),
        ("hmcts.hearings", "H1", "p3"),
    }


def test_an_event_table_whose_parent_is_an_event_table_needs_its_rows(spark):
    contacts = spark.createDataFrame([("CC1", "SR2")], "CareContactId string, ServiceRequestId string")
    with pytest.raises(ValueError, match="mhsds/mhs201_care_contact: its parent mhsds.mhs101_referral"):
        contacts.transform(link.events.event_parent("mhsds/mhs201_care_contact"))


@pytest.mark.parametrize(
    ("backend", "master", "tuples", "chosen"),
    [
        ("auto", "local[2]", 1000, "duckdb"),
        ("auto", "local[*]", 2_000_000, "spark"),
        ("auto", "spark://127.0.0.1:7077", 1000, "spark"),
        ("spark", "local[2]", 1000, "spark"),
        ("duckdb", "yarn", 10**9, "duckdb"),
    ],
)
def test_splink_scores_on_duckdb_only_when_local_and_small_unless_told(config, backend, master, tuples, chosen):
    conf = config.linkage.model_copy(update={"backend": backend, "duckdb_max_tuples": 1_000_000})
    assert link.model.backend(conf, master, tuples) == chosen


def _trained(dialect: str) -> dict:
    """This job's comparisons in `dialect`, with made-up learnt values (m = u / 2 per level)."""
    settings = link.model.splink_settings().create_settings_dict(dialect)
    for c, comparison in enumerate(settings["comparisons"]):
        for lv, level in enumerate(comparison["comparison_levels"]):
            if not level.get("is_null_level"):
                level.update(m_probability=0.01 * (c + 1), u_probability=0.001 * (lv + 1))
    return {**settings, "probability_two_random_records_match": 0.0123, "sql_dialect": dialect}


def test_a_model_trained_on_spark_predicts_on_duckdb_with_its_learnt_values_and_duckdb_sql():
    import json

    spark_model = _trained("spark")
    moved = link.model.for_dialect(json.dumps(spark_model), "duckdb")
    assert moved["sql_dialect"] == "duckdb" and moved["probability_two_random_records_match"] == 0.0123
    conditions = [lv["sql_condition"] for c in moved["comparisons"] for lv in c["comparison_levels"]]
    assert any("jaro_winkler" in c for c in conditions) and not any("`" in c for c in conditions)
    learnt = [
        (lv.get("m_probability"), lv.get("u_probability"))
        for c in spark_model["comparisons"]
        for lv in c["comparison_levels"]
    ]
    assert [
        (lv.get("m_probability"), lv.get("u_probability"))
        for c in moved["comparisons"]
        for lv in c["comparison_levels"]
    ] == learnt
    assert link.model.for_dialect(json.dumps(spark_model), "spark") == spark_model  # same dialect: as saved


def test_pairs_scored_on_duckdb_reach_spark_without_python_workers_even_when_none(
    spark, config, tmp_path, no_python_rdd
):
    import json

    from ld_spark.frames import local_frame

    model = tmp_path / "model.json"
    model.write_text(json.dumps(_trained("duckdb")))
    people = {
        "a": {"forename": "ann", "surname": "lee", "dob": "1980-01-02", "sex": "F", "nhs": "9000000001"},
        "b": {"forename": "bob", "surname": "kay", "dob": "1975-03-04", "sex": "M", "nhs": "9000000002"},
        "c": {"forename": "ann", "surname": "lee", "dob": "1980-01-02", "sex": "F", "nhs": "9000000001"},
    }

    def scored(ids):
        rows = [(uid, *[people[uid].get(c) for c in link.identity.IDENTITY]) for uid in ids]
        these = local_frame(spark, rows, IDENTITY_SCHEMA)
        return link.model.train_and_predict(
            spark, these, config.linkage, tmp_path, model_in=str(model), on="duckdb", keep_from=0.0
        ).pairs

    none = scored(["a", "b"])  # no blocking key in common: no pair at all
    assert none.count() == 0
    assert none.schema.simpleString() == "struct<id_l:string,id_r:string,match_weight:double>"
    (pair,) = scored(["a", "b", "c"]).collect()
    assert {pair["id_l"], pair["id_r"]} == {"a", "c"} and pair["match_weight"] > 0


def test_m_floor_raises_a_vetoing_disagreement_and_renormalises_the_comparison():
    import math

    trained = {
        "comparisons": [
            {
                "output_column_name": "sex",
                "comparison_levels": [
                    {"is_null_level": True},
                    {"m_probability": 1.0, "u_probability": 0.5},
                    {"m_probability": 2e-26, "u_probability": 0.5},
                ],
            },
            {  # not trained yet: left as it is
                "output_column_name": "nhs",
                "comparison_levels": [{"is_null_level": True}, {"u_probability": 0.1}, {"u_probability": 0.9}],
            },
        ]
    }
    floored = link.model.floor_m(trained, 1e-4)

    agree, disagree = floored["comparisons"][0]["comparison_levels"][1:]
    # The disagreement at the floor, the agreement scaled to leave the comparison summing to 1.
    assert agree["m_probability"] == pytest.approx(0.9999, rel=1e-12)
    assert disagree["m_probability"] == 1e-4
    # The disagreement's weight: -84.3 bits before, -12.3 after.
    assert math.log2(disagree["m_probability"] / 0.5) == pytest.approx(-12.288, abs=1e-3)
    assert floored["comparisons"][1] == trained["comparisons"][1]
    assert trained["comparisons"][0]["comparison_levels"][2]["m_probability"] == 2e-26  # a copy
    # A saved (floored) model is floored again unchanged: it predicts with the values it was saved with.
    assert link.model.floor_m(floored, 1e-4) == floored
    # Levels the scaling would take below the floor are floored too.
    close = {"comparisons": [{"comparison_levels": [{"m_probability": v} for v in (0.99989, 1.00005e-4, 1e-5)]}]}
    assert [lv["m_probability"] for lv in link.model.floor_m(close, 1e-4)["comparisons"][0]["comparison_levels"]] == [
        pytest.approx(0.9998, rel=1e-12),
        1e-4,
        1e-4,
    ]


def test_a_saved_model_with_other_comparisons_is_refused():
    import json

    other = _trained("spark")
    other["comparisons"] = other["comparisons"][:-1]
    with pytest.raises(InputError, match="not this job's"):
        link.model.for_dialect(json.dumps(other), "duckdb")


def test_a_saved_model_scores_the_pairs_of_this_jobs_blocking_rules():
    import json

    saved = _trained("spark")
    saved["blocking_rules_to_generate_predictions"] = [{"blocking_rule": "l.`sex` = r.`sex`", "sql_dialect": "spark"}]
    for dialect in ("spark", "duckdb"):
        rules = link.model.for_dialect(json.dumps(saved), dialect)["blocking_rules_to_generate_predictions"]
        assert len(rules) == len(link.blocking.PREDICTION_RULES) and "sex` = r.`sex`" not in str(rules[0]), dialect


BLOCKING_SCHEMA = "nhs string, pnc string, dob string, sex string, forename string, surname string, postcode string"


def test_each_blocking_rule_counts_the_pairs_within_its_blocks_and_its_largest_block(spark):
    tuples = spark.createDataFrame(
        [
            # dob-sex: a block of 3 (3 pairs) and one of 2 (1 pair); a null dob and a lone tuple pair nothing.
            ("N1", None, "1980-01-01", "1", "ANN", "LEE", None),
            ("N1", None, "1980-01-01", "1", "ANNE", "LEE", None),
            (None, None, "1980-01-01", "1", None, None, None),
            (None, "P1", "1990-05-05", "2", "BOB", "KAY", "AB1 2CD"),
            (None, "P1", "1990-05-05", "2", "BOB", "KAY", "AB1 2CD"),
            (None, None, "1970-07-07", "2", "BOB", "KAY", "AB1 2CD"),
            (None, None, None, "1", "BOB", None, "ZZ9 9ZZ"),
        ],
        BLOCKING_SCHEMA,
    )
    counted = {r["rule"]: r for r in link.blocking.comparisons(tuples)}
    assert list(counted) == ["nhs", "pnc", "dob-sex", "forename-surname", "postcode-sex"]
    assert {rule: (r["comparisons"], r["blocks"], r["largest_block"]) for rule, r in counted.items()} == {
        "nhs": (1, 1, 2),
        "pnc": (1, 1, 2),
        "dob-sex": (4, 3, 3),
        "forename-surname": (3, 3, 3),  # BOB KAY x3; ANN LEE and ANNE LEE are blocks of one
        "postcode-sex": (3, 2, 3),
    }


def test_a_rule_over_the_comparison_budget_stops_the_run_with_one_line_naming_it():
    counted = [
        {"rule": "nhs", "comparisons": 10, "blocks": 10, "largest_block": 2},
        {"rule": "dob-sex", "comparisons": 1_000_001, "blocks": 40, "largest_block": 900},
    ]
    link.blocking.check_budget(counted, 1_000_001)  # at the budget: allowed
    with pytest.raises(InputError) as raised:
        link.blocking.check_budget(counted, 1_000_000)
    assert str(raised.value) == (
        "linkage: blocking rule dob-sex makes 1,000,001 comparisons (largest block 900 identity tuples), over "
        "linkage.max_comparisons_per_rule 1,000,000: add a key to the rule, or raise the budget if the cluster "
        "can score that many pairs"
    )


@pytest.mark.parametrize("on", ["spark", "duckdb"])
def test_quality_per_cohort_and_period_scores_the_members_records_in_each_period(spark, on):
    """A member (k1, truly P1) with a missed link (A3 went to k2) and a wrong one (B1, truly P2):
    in the post period, pairs (k1: A1A2 A1B1 A2B1; P1: A1A2 A1A3 A2A3; both: A1A2) give the
    L&D record 1/2 and 1/2, the A&E records 1/3 and 1/3; C1 alone in the pre period has no pair."""
    import datetime as dt

    from ld_spark.link.quality import cohort_quality_rows

    rows = [
        ("ld_referrals", "A1", "k1", "P1", "2017-03-01"),
        ("hes_ae", "A2", "k1", "P1", "2017-05-01"),
        ("hes_ae", "A3", "k2", "P1", "2017-06-01"),
        ("hes_ae", "B1", "k1", "P2", "2017-04-01"),
        ("hes_ae", "C1", "k1", "P1", "2016-06-01"),
        ("hes_ae", "D1", "k1", "P1", "2019-06-01"),  # month 27: in neither period
    ]
    record_person = spark.createDataFrame(
        [r[:3] for r in rows], "source_table string, record_key string, person_key string"
    )
    truth = spark.createDataFrame(
        [(r[0], r[1], r[3]) for r in rows], "source_table string, record_key string, person_id string"
    )
    dates = spark.createDataFrame(
        [(r[0], r[1], dt.date.fromisoformat(r[4])) for r in rows],
        "source_table string, record_key string, record_date date",
    )
    cohort_index = spark.createDataFrame(
        [("k1", "evaluation", dt.date(2017, 3, 10))], "person_key string, cohort string, index_date date"
    )
    got = cohort_quality_rows(record_person, truth, cohort_index, dates, (-12, -1), (0, 11), on)
    assert got == [
        {"cohort": "evaluation", "period": "pre", "source_table": "hes_ae", "n_records": 1, "n_persons": 1}
        | {"precision": None, "recall": None, "f1": None},
        {"cohort": "evaluation", "period": "post", "source_table": "ld_referrals", "n_records": 1, "n_persons": 1}
        | {"precision": 0.5, "recall": 0.5, "f1": 0.5},
        {"cohort": "evaluation", "period": "post", "source_table": "hes_ae", "n_records": 3, "n_persons": 2}
        | {"precision": 0.3333, "recall": 0.3333, "f1": 0.3333},
    ]


def test_links_are_re_decided_at_each_threshold_from_the_same_scored_pairs(spark):
    """Pairs a-b (weight 3: probability 0.89) and b-c (weight 8: 0.996): at 0.80 one person, at
    0.95 a alone and b-c together, at 0.999 three people; the deterministic edge c-d always holds."""
    records = spark.createDataFrame(
        [("t", f"r{x}", x) for x in "abcd"], f"source_table string, record_key string, {link.identity.UNIQUE_ID} string"
    )
    ids = tuples(spark, [(x, {}) for x in "abcd"])
    strong = spark.createDataFrame([("c", "d")], "id_l string, id_r string")
    pairs = spark.createDataFrame([("a", "b", 3.0), ("b", "c", 8.0)], "id_l string, id_r string, match_weight double")

    def groups(threshold: float) -> list[list[str]]:
        linked = link.linked_at(records, ids, strong, pairs, threshold, b"k" * 32).collect()
        by_person: dict[str, list[str]] = {}
        for r in linked:
            by_person.setdefault(r["person_key"], []).append(r["record_key"])
        return sorted(sorted(v) for v in by_person.values())

    assert groups(0.80) == [["ra", "rb", "rc", "rd"]]
    assert groups(0.95) == [["ra"], ["rb", "rc", "rd"]]
    assert groups(0.999) == [["ra"], ["rb"], ["rc", "rd"]]
    # The same from the graph in the driver (the embedded backend).
    graph = link.components.Graph(
        ids.select(link.identity.UNIQUE_ID, "nhs", "dob").toPandas(), strong.toPandas(), pairs.toPandas()
    )

    def keys(threshold: float, graph=None) -> dict[str, str]:
        linked = link.linked_at(records, ids, strong, pairs, threshold, b"k" * 32, graph).collect()
        return {r["record_key"]: r["person_key"] for r in linked}

    for threshold in (0.80, 0.95, 0.999):
        assert keys(threshold, graph) == keys(threshold)  # the same people, keyed alike


def test_the_twins_are_split_alike_in_the_driver(spark):
    t = tuples(spark, TWINS)
    edges = _twin_edges(spark).toPandas()
    members = t.select(link.identity.UNIQUE_ID, "nhs", "dob").toPandas()
    labels = link.components.local_components(members[link.identity.UNIQUE_ID], edges)
    assert set(labels["component"]) == {"hes_a", "s1"}
    got = link.components.local_split_conflicts(labels, members, edges)
    assert dict(zip(got[link.identity.UNIQUE_ID], got["component"])) == {
        "hes_a": "hes_a",
        "pnc_a": "hes_a",
        "pnc_a2": "hes_a",
        "hes_b": "hes_b",
        "ld_b": "hes_b",
        "pnc_b": "hes_b",
        "s1": "s1",
        "s2": "s1",
    }


def test_people_found_in_the_driver_are_the_people_spark_finds_on_a_random_graph(spark):
    """600 tuples in clusters with chains, shared NHS numbers and twins: components and the
    conflict split, in Spark and in the driver, label every tuple alike."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    ids = [f"t{i:04d}" for i in rng.permutation(600)]  # ids not in the clusters' order
    rows, edges = [], []
    for start in range(0, 600, 6):
        members = ids[start : start + 6]
        dob = f"19{rng.integers(50, 99)}-01-01"
        for j, uid in enumerate(members):
            nhs = str(rng.integers(2)) if j < 3 else None  # two numbers in one cluster: sometimes twins
            rows.append((uid, {"dob": dob if rng.random() < 0.9 else None, "nhs": nhs}))
        for j in range(1, 6):
            other = members[rng.integers(j)]
            edges.append((members[j], other, float(rng.choice([np.inf, *rng.uniform(5, 15, 4)]))))
    for _ in range(40):  # stray links between clusters
        a, b = rng.choice(600, 2, replace=False)
        edges.append((ids[a], ids[b], float(rng.uniform(5, 15))))
    t = tuples(spark, rows)
    edge_frame = pd.DataFrame(edges, columns=["id_l", "id_r", "match_weight"])
    spark_edges = spark.createDataFrame(edge_frame, "id_l string, id_r string, match_weight double")
    in_spark = link.components.split_conflicts(
        link.components.connected_components(t.select(link.identity.UNIQUE_ID), spark_edges), t, spark_edges
    )
    members = t.select(link.identity.UNIQUE_ID, "nhs", "dob").toPandas()
    labels = link.components.local_components(members[link.identity.UNIQUE_ID], edge_frame)
    in_driver = link.components.local_split_conflicts(labels, members, edge_frame)
    spark_labels = {r[link.identity.UNIQUE_ID]: r["component"] for r in in_spark.collect()}
    driver_labels = dict(zip(in_driver[link.identity.UNIQUE_ID], in_driver["component"]))
    assert driver_labels == spark_labels
    # Strays joined clusters (60 components of 100 clusters); the split parted many (150 people).
    assert labels["component"].nunique() < 100 < len(set(spark_labels.values()))


RECORD_PERSON_SCHEMA = "source_table string, record_key string, person_key string"


def test_people_keep_their_earlier_key_and_every_merge_split_and_removal_is_recorded(spark):
    earlier = {"P1": ["a1", "a2", "a3"], "P2": ["b1", "b2"], "P3": ["c1"], "P4": ["d1", "d2"]}
    earlier |= {"P5": ["e1", "e2", "e3", "e4"], "P6": ["g1"], "P7": ["h1"]}
    # This run's own keys: P1 gains a record; P3 joins P2; P4 splits evenly; P5 loses e4 to a
    # person whose own key happens to be P6's earlier key; n1 is someone new; h1 is gone.
    fresh = {"nA": ["a1", "a2", "a3", "a4"], "nB": ["b1", "b2", "c1"], "nD1": ["d1"], "nD2": ["d2"]}
    fresh |= {"nE": ["e1", "e2", "e3"], "P6": ["e4"], "nG": ["g1"], "nN": ["n1"]}

    def frame(people):
        rows = [("hes_ae", r, k) for k, records in people.items() for r in records]
        return spark.createDataFrame(rows, RECORD_PERSON_SCHEMA)

    carried = link.stable.carried(frame(fresh), frame(earlier), b"k1", "run-2")
    salted = hmac.new(b"k1", "P6\u001frun-2".encode(), hashlib.sha256).hexdigest()
    expected = {"P1": ["a1", "a2", "a3", "a4"], "P2": ["b1", "b2", "c1"], "P4": ["d1"], "nD2": ["d2"]}
    expected |= {"P5": ["e1", "e2", "e3"], salted: ["e4"], "P6": ["g1"], "nN": ["n1"]}
    assert_df_equality(carried.record_person, frame(expected), ignore_row_order=True)
    changes = spark.createDataFrame(
        [
            ("P3", "P2", "merged", 1, "run-2"),
            ("P4", "nD2", "split", 1, "run-2"),
            ("P5", salted, "split", 1, "run-2"),
            ("P7", None, "removed", 0, "run-2"),
        ],
        "old_person_key string, person_key string, change string, records long, run_id string",
    )
    assert_df_equality(carried.changes, changes, ignore_row_order=True, ignore_nullable=True)


def test_a_first_run_keeps_its_own_keys_and_records_no_change(spark):
    fresh = spark.createDataFrame([("hes_ae", "a1", "k1"), ("pnc.offences", "o1", "k1")], RECORD_PERSON_SCHEMA)
    carried = link.stable.carried(fresh, None, b"k1", "run-1")
    assert_df_equality(carried.record_person, fresh, ignore_row_order=True)
    assert carried.changes.count() == 0


def test_a_persons_year_of_birth_and_sex_are_what_most_of_their_records_say_ties_to_the_smaller(spark):
    records = spark.createDataFrame(
        [
            ("T", "a1", "1980-01-01", "M"),
            ("T", "a2", "1980-05-05", "M"),
            ("U", "a3", "1981-02-02", "F"),
            ("T", "b1", "1980-01-01", "M"),  # one year each and one sex each: the smaller wins
            ("U", "b2", "1979-06-30", "F"),
            ("T", "c1", None, None),  # nothing known
            ("T", "e1", None, None),  # two unknowns do not outvote one known value
            ("T", "e2", None, None),
            ("U", "e3", "1990-03-03", "F"),
        ],
        "source_table string, record_key string, dob string, sex string",
    )
    record_person = spark.createDataFrame(
        [
            ("T", "a1", "A"),
            ("T", "a2", "A"),
            ("U", "a3", "A"),
            ("T", "b1", "B"),
            ("U", "b2", "B"),
            ("T", "c1", "C"),
            ("T", "d1", "D"),  # a person whose record is not among the identity records
            ("T", "e1", "E"),
            ("T", "e2", "E"),
            ("U", "e3", "E"),
        ],
        "source_table string, record_key string, person_key string",
    )
    expected = spark.createDataFrame(
        [("A", 1980, "M"), ("B", 1979, "F"), ("C", None, None), ("D", None, None), ("E", 1990, "F")],
        "person_key string, year_of_birth int, sex string",
    )
    got = link.identity.person_attributes(records, record_person)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
