"""Monthly refresh on one OUT_DIR: people keep their person_keys from one month's run to the
next, and `ld-spark forget` erases an opted-out person from every layer, for good.

One story, three runs of the tiny extract in this process and one `ld-spark forget` command:
1. month 1: the tiny extract with the last rows of two tables held back, and a person of our
   own (Q: a referral and a HES attendance, names no other record has);
2. month 2: the held-back rows and Q's police record arrive as a new file of each table; the run
   is incremental, and its bronze is what landing everything at once gives;
3. `ld-spark forget` with Q's NHS number: no byte of it, or of Q's names, remains under OUT_DIR;
4. month 3 (the supplier has not yet removed Q): a new HES file sends Q's attendance again; the
   incremental run lands it and erases Q again, before analysis, and its bronze is what a
   month 3 without Q gives, with Q's raw rows counted as erased.

Parquet is written uncompressed here, so that a byte scan of OUT_DIR sees every value stored.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time

import pytest
from conftest import REPO, cli_env, sql_descriptions
from pyspark.sql import functions as F

from ld_spark import bronze, catalog, io, link, pipeline, refresh, rekey
from ld_spark.contract import TABLES
from ld_spark.errors import InputError

NHS = "9434765919"  # passes the mod-11 check
Q = {"forename": "Quenburga", "surname": "Zwackelmann", "dob": "1933-11-29", "pnc": "1990/0123457Q"}
# How Q's identity may be stored: as written in the raw files, and as bronze normalises it (a
# date of birth is stored as a date in bronze, as text in landing; the postcode is Shetland's).
Q_BYTES = [NHS, "943 476 5919", "Quenburga", "QUENBURGA", "Zwackelmann", "ZWACKELMANN", Q["pnc"], Q["dob"]]
Q_BYTES += ["ZE2 9QQ", "ZE29QQ"]
HELD_BACK = {"hes_ae": 10, "pnc/offences": 10}


def note(text: str) -> None:
    """A timing on the console, past pytest's capture (capsys reads what the run prints)."""
    print(text, file=sys.__stderr__)


def rows_of(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def q_rows(tiny):
    """Q's referral, HES attendance and police records (one with a code outside its list, so
    quarantined), each a copy of the table's first row with Q's identity and a key of its own."""
    referral = rows_of(tiny / "ld_referrals/part-0.csv")[0] | {
        "referral_id": "LDQQQQQQQQ",
        "forename": Q["forename"],
        "surname": Q["surname"],
        "date_of_birth": Q["dob"],
        "sex": "F",
        "nhs_number": "943 476 5919",
        "pnc_id": Q["pnc"],
        "postcode": "ZE2 9QQ",
        "consent": "Y",
    }
    attendance = rows_of(tiny / "hes_ae/part-0.csv")[0] | {
        "AEKEY": "AEQQQQQQQQ",
        "NEWNHSNO": NHS,
        "DOB": Q["dob"],
        "SEX": "2",
        "HOMEADD": "ZE2 9QQ",
    }
    offence = rows_of(tiny / "pnc/offences/part-0.csv")[0] | {
        "offence_id": "OFQQQQQQQQ",
        "pnc_id": Q["pnc"],
        "forename": Q["forename"],
        "surname": Q["surname"],
        "date_of_birth": Q["dob"],
        "sex": "F",
        "postcode": "ZE2 9QQ",
    }
    quarantined = offence | {"offence_id": "OFQQQQQQQR", "offence_category": "ZZ"}
    return referral, attendance, [offence, quarantined]


def months(tiny, root):
    """(month 1's raw folder, month 2's raw folder)."""
    referral, attendance, offences = q_rows(tiny)
    one, two = root / "month1", root / "month2"
    shutil.copytree(tiny, one)
    for table, n in HELD_BACK.items():
        rows = rows_of(tiny / table / "part-0.csv")
        write_rows(one / table / "part-0.csv", rows[:-n])
    write_rows(one / "ld_referrals/part-0.csv", [*rows_of(one / "ld_referrals/part-0.csv"), referral])
    write_rows(one / "hes_ae/part-0.csv", [*rows_of(one / "hes_ae/part-0.csv"), attendance])
    shutil.copytree(one, two)
    for table, n in HELD_BACK.items():
        later = rows_of(tiny / table / "part-0.csv")[-n:]
        write_rows(two / table / "part-1.csv", later + (offences if table == "pnc/offences" else []))
    # Rows that change the state of month 1's: a hearing sent again (a copy), a hearing's key
    # reused with other content (both versions quarantined, so one leaves bronze), and an MHSDS
    # referral in a later submission (it supersedes month 1's).
    hearings = rows_of(one / "hmcts/hearings/part-0.csv")
    reused = hearings[1] | {"adjourned": "N" if hearings[1]["adjourned"] == "Y" else "Y"}
    write_rows(two / "hmcts/hearings/part-1.csv", [hearings[0], reused])
    referral = rows_of(one / "mhsds/mhs101_referral/part-0.csv")[0]
    later = referral | {"UniqMonthID": str(int(referral["UniqMonthID"]) + 1)}
    write_rows(two / "mhsds/mhs101_referral/part-1.csv", [later])
    return one, two


def without_q(raw, root):
    """A copy of a raw folder with every row of Q's left out (by key), as a supplier that has
    applied the opt-out would send it, and how many rows of each table were left out."""
    keys = {"LDQQQQQQQQ", "AEQQQQQQQQ", "OFQQQQQQQQ", "OFQQQQQQQR"}
    shutil.copytree(raw, root)
    left_out = {}
    for table, column in (("ld_referrals", "referral_id"), ("hes_ae", "AEKEY"), ("pnc/offences", "offence_id")):
        for path in sorted((root / table).glob("*.csv")):
            rows = rows_of(path)
            kept = [r for r in rows if r[column] not in keys]
            left_out[table] = left_out.get(table, 0) + len(rows) - len(kept)
            write_rows(path, kept)
    return root, left_out


def people(spark, out) -> dict[tuple[str, str], str]:
    """(source_table, record_key) -> person_key, as the run in `out` linked the identity records."""
    table = catalog.read(spark, out, catalog.RECORD_PERSON_IDENTITY)
    return {(r["source_table"], r["record_key"]): r["person_key"] for r in table.collect()}


def identity_records(spark, out):
    """The identity records of the bronze tables in `out`, with their tuple ids."""
    bronze_tables = {t: catalog.read(spark, out, catalog.bronze(t)) for t, _, _ in link.identity.SOURCES.values()}
    return link.identity.records(bronze_tables)


def identity_tuples(spark, out):
    """The identity tuples of the bronze tables in `out`."""
    return link.identity.identity_tuples(identity_records(spark, out))


def partition(linked: dict) -> set[frozenset]:
    """record -> person_key, as the set of people (each a set of records), whatever their keys."""
    found: dict[str, set] = {}
    for record, key in linked.items():
        found.setdefault(key, set()).add(record)
    return {frozenset(p) for p in found.values()}


def tuples_of(spark, out, records) -> list[str]:
    """The identity tuples (unique_id) of these (source_table, record_key) records, from bronze."""
    wanted = spark.createDataFrame(records, "source_table string, record_key string")
    found = identity_records(spark, out).join(wanted, ["source_table", "record_key"])
    return [r["unique_id"] for r in found.select("unique_id").distinct().collect()]


def scored_tuples(spark, out) -> set[str]:
    return {r[0] for r in catalog.read(spark, out, catalog.SCORED_TUPLES).collect()}


def stored_pairs(spark, out) -> list[tuple]:
    return sorted(tuple(r) for r in catalog.read(spark, out, catalog.SCORED_PAIRS).collect())


def files_holding(root, needles: list[str]) -> dict[str, list[str]]:
    """Every file under root whose bytes contain one of the needles -> the needles found."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = [n for n in needles if n.encode() in data]
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def linkage_keys_of(spark, out, records) -> dict[str | None, set[str]]:
    """The person keys holding these (source_table, record_key) records in each linkage: the
    main one (None) and each sensitivity analysis's own."""
    wanted = spark.createDataFrame(records, "source_table string, record_key string")
    found = {None: catalog.path(out, catalog.RECORD_PERSON)}
    for variant in sorted((out / "linkage" / "sensitivity").glob("*/record_person")):
        found[variant.parent.name] = variant
    return {
        linkage: {
            r["person_key"] for r in io.read_delta(spark, path).join(wanted, ["source_table", "record_key"]).collect()
        }
        for linkage, path in found.items()
    }


def rows_of_others(spark, out, keys: dict[str | None, set[str]], of_q: bool = False) -> dict[str, int]:
    """Every table with a person_key -> its rows of people other than Q (of Q's, with of_q), Q
    being keys[linkage] in each linkage's own tables."""
    counted = {}
    for name in catalog.versions(out):
        table = io.read_delta(spark, out / name)
        if "person_key" not in table.columns:
            continue
        parts = name.split("/")
        theirs = keys.get(parts[2] if parts[1] == "sensitivity" else None, set())
        q = F.col("person_key").isin(*theirs) if theirs else F.lit(False)
        counted[name] = table.filter(q if of_q else ~q | F.col("person_key").isNull()).count()
    return counted


def _rows(df) -> list[tuple]:
    """A frame's rows, sorted, with each file named by its base name (months live in two folders)."""
    named = [c for c in df.columns if c in (io.SOURCE_FILE, "source_file")]
    for column in named:
        df = df.withColumn(column, F.element_at(F.split(column, "/"), -1))
    return sorted(tuple(r) for r in df.drop("run_id").collect())


def bronze_as_stored(spark, out) -> dict:
    """Every bronze table's rows, the quarantined rows and the reconciliation, as the run left them."""
    tables = {t: _rows(catalog.read(spark, out, catalog.bronze(t))) for t in TABLES}
    quarantined = _rows(catalog.read(spark, out, catalog.QUARANTINE))
    return {"bronze": tables, "quarantine": quarantined, "reconciliation": rows_of(out / "linkage/reconciliation.csv")}


def bronze_in_full(spark, raw) -> dict:
    """The same, from every raw file landed and classified at once (bronze's transforms, no run)."""
    layouts, faults = io.check_tables(spark, str(raw))
    assert not faults
    landing = io.read_landing(spark, layouts).cache()
    classified = {t: io.landed(landing, t).transform(bronze.classify(t)) for t in TABLES}
    tables = {t: _rows(df.transform(bronze.typed(t))) for t, df in classified.items()}
    read = io.raw_record_counts(spark, layouts)
    states = bronze.every_state_count(classified)
    reconciliation = [
        {"source_table": t, **{k: str(v) for k, v in bronze.reconciled(t, read[t], states[t]).items()}} for t in TABLES
    ]
    quarantined = _rows(bronze.quarantine(classified, "full"))
    landing.unpersist()
    return {"bronze": tables, "quarantine": quarantined, "reconciliation": reconciliation}


@pytest.fixture
def uncompressed_parquet(spark):
    conf = "spark.sql.parquet.compression.codec"
    before = spark.conf.get(conf)
    spark.conf.set(conf, "uncompressed")
    yield
    spark.conf.set(conf, before)


def test_people_keep_their_keys_month_to_month_and_a_forgotten_person_leaves_no_byte(
    spark, run_config, tiny, tmp_path, uncompressed_parquet, capsys
):
    run_config = run_config.model_copy(
        update={
            "sensitivity": run_config.sensitivity.model_copy(update={"enabled": False}),
            "mlflow": run_config.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}),
        }
    )
    one, two = months(tiny, tmp_path)
    out = tmp_path / "out"

    started = time.time()
    assert pipeline.run(spark, run_config, raw=str(one), out=str(out)) == 0
    note(f"month 1: {time.time() - started:.1f} s")
    before = people(spark, out)
    q_key = before[("ld_referrals", "LDQQQQQQQQ")]
    assert before[("hes_ae", "AEQQQQQQQQ")] == q_key

    # Month 2 with the sensitivity analyses, whose own linkages hold Q under other keys, and
    # month 1's model: only the pairs month 1's scores cannot stand for are scored.
    model = out / "linkage/model/splink_model.json"
    with_sensitivity = run_config.model_copy(
        update={
            "sensitivity": run_config.sensitivity.model_copy(update={"enabled": True}),
            "linkage": run_config.linkage.model_copy(update={"model_in": str(model)}),
        }
    )
    capsys.readouterr()
    started = time.time()
    assert pipeline.run(spark, with_sensitivity, raw=str(two), out=str(out)) == 0
    note(f"month 2: {time.time() - started:.1f} s")
    # Month 2 only added files: they alone are landed, and bronze takes their keys by MERGE.
    # Bronze, quarantine and the reconciliation are what landing all of month 2 at once gives.
    printed = capsys.readouterr().out
    assert "incremental since run " in printed
    assert "scored pairs carried over from the last run" in printed
    assert bronze_as_stored(spark, out) == bronze_in_full(spark, two)
    # The pairs it kept are those of scoring every pair of month 2's tuples with that model.
    tuples = identity_tuples(spark, out)
    whole = link.model.train_and_predict(
        spark, tuples, run_config.linkage, tmp_path / "splink", model_in=model, on="duckdb", keep_from=0.8
    )
    whole_pairs = sorted(tuple(r) for r in whole.pairs.collect())
    month2_tuples = {r[0] for r in tuples.select("unique_id").collect()}
    assert stored_pairs(spark, out) == whole_pairs
    assert scored_tuples(spark, out) == month2_tuples
    after = people(spark, out)
    # So month 2's people are a whole linkage's: the same partition of the records (keys aside).
    records = identity_records(spark, out)
    strong = link.deterministic.deterministic_edges(tuples)
    whole_people = link.linked_at(records, tuples, strong, whole.pairs, run_config.linkage.match_threshold, b"k" * 32)
    assert partition({(r["source_table"], r["record_key"]): r["person_key"] for r in whole_people.collect()}) == (
        partition(after)
    )
    assert set(after) > set(before)
    # Q gained a police record (a new identity tuple) and keeps the key.
    assert after[("pnc.offences", "OFQQQQQQQQ")] == after[("ld_referrals", "LDQQQQQQQQ")] == q_key
    # Every person whose earlier records stay together, with no one else's earlier records,
    # keeps the key: month 2 adds people and records, it does not rename anyone.
    earlier_people: dict[str, set] = {}
    for record, key in before.items():
        earlier_people.setdefault(key, set()).add(record)
    now_holding: dict[str, set] = {}
    for record, key in after.items():
        if record in before:
            now_holding.setdefault(key, set()).add(record)
    unchanged = [k for k, records in earlier_people.items() if any(records == r for r in now_holding.values())]
    assert len(unchanged) > 100
    for key in unchanged:
        assert {after[r] for r in earlier_people[key]} == {key}
    # Every earlier key is still someone's, or person_key_changes says where its records went.
    changes = catalog.read(spark, out, catalog.PERSON_KEY_CHANGES).collect()
    moved = {r["old_person_key"] for r in changes}
    assert not moved & set(unchanged)
    assert set(earlier_people) <= set(after.values()) | moved
    assert {r["change"] for r in changes} <= {"merged", "split", "removed"}

    # The same month again, with the default of skipping what is unchanged: hashes, no run.
    skipping = with_sensitivity.model_copy(
        update={"paths": run_config.paths.model_copy(update={"skip_unchanged": True})}
    )
    versions = catalog.versions(out)
    capsys.readouterr()
    started = time.time()
    assert pipeline.run(spark, skipping, raw=str(two), out=str(out)) == 0
    note(f"month 2, nothing new: {time.time() - started:.1f} s")
    assert "nothing new: " in capsys.readouterr().out
    assert catalog.versions(out) == versions

    # Q's identity tuples are among the kept scores, with pairs (forget is to take them).
    q_tuples = set(tuples_of(spark, out, [r for r, k in after.items() if k == q_key]))
    assert q_tuples <= scored_tuples(spark, out) and any(set(p[:2]) & q_tuples for p in stored_pairs(spark, out))

    # The byte scan can see Q (a scan that finds nothing proves nothing), the quarantined offence too.
    held = files_holding(out, Q_BYTES)
    assert {f.split("/")[1] for f in held if f.startswith("linkage/")} >= {"landing", "bronze", "quarantine"}
    # Everyone else's rows, in each linkage's tables, to check that forget takes Q's only.
    q_keys = linkage_keys_of(spark, out, [r for r, k in after.items() if k == q_key])
    assert q_keys[None] == {q_key} and len(q_keys) == 3  # the main linkage and two thresholds
    others_before = rows_of_others(spark, out, q_keys)

    request = tmp_path / "opt_out.csv"
    request.write_text("nhs_number\n943 476 5919\n")
    overlay = tmp_path / "uncompressed.yaml"
    overlay.write_text("spark:\n  extra:\n    spark.sql.parquet.compression.codec: uncompressed\n")
    forget = [sys.executable, "-m", "ld_spark.cli", "forget", "--nhs-numbers", str(request), "--out", str(out)]
    started = time.time()
    done = subprocess.run(
        [*forget, "--conf", "test", "--conf", str(overlay)],
        cwd=REPO,
        env=cli_env(run_config.mlflow.tracking_uri),
        capture_output=True,
        text=True,
        timeout=900,
    )
    note(f"forget: {time.time() - started:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 new to the opt-out register): 1 people, 3 linked records" in done.stdout
    assert NHS not in done.stdout + done.stderr
    assert files_holding(out, Q_BYTES) == {}
    linked = people(spark, out)
    assert not {k for k in linked.values() if k == q_key}
    assert set(linked) == set(after) - {k for k, v in after.items() if v == q_key}
    assert rows_of_others(spark, out, q_keys) == others_before
    for name, count in rows_of_others(spark, out, q_keys, of_q=True).items():
        assert count == 0, name
    audit = catalog.read(spark, out, catalog.ERASURE_AUDIT).collect()
    assert [(a["numbers"], a["people"], a["records"]) for a in audit] == [(1, 1, 3)]
    # Q's tuples, and every pair with one, are gone from the kept scores; everyone else's stay.
    assert scored_tuples(spark, out) == month2_tuples - q_tuples
    assert stored_pairs(spark, out) == [p for p in whole_pairs if not set(p[:2]) & q_tuples]

    # Month 3 adds a file of HES attendances: someone else's, and Q's again (the supplier has not
    # applied the opt-out yet). Forget changed the tables, so the run runs; it is incremental
    # (landing and bronze are kept as forget left them), and erases Q's new record again.
    three = tmp_path / "month3"
    shutil.copytree(two, three)
    stranger = rows_of(tiny / "hes_ae/part-0.csv")[1] | {"AEKEY": "AENEWNEWNE"}
    write_rows(three / "hes_ae/part-2.csv", [stranger, q_rows(tiny)[1]])  # Q's attendance, sent again
    started = time.time()
    assert pipeline.run(spark, skipping, raw=str(three), out=str(out)) == 0
    printed = capsys.readouterr().out
    note(f"month 3: {time.time() - started:.1f} s")
    assert "incremental since run " in printed and "1 opted-out people erased (1 records)" in printed
    assert files_holding(out, Q_BYTES) == {}
    assert set(people(spark, out)) == set(linked) | {("hes_ae", "AENEWNEWNE")}
    # Bronze, the quarantine and every other row's state are those of a supplier's month 3
    # without Q; the reconciliation counts Q's five raw rows as read, and erased.
    expected, left_out = without_q(three, tmp_path / "month3_without_q")
    assert left_out == {"ld_referrals": 1, "hes_ae": 2, "pnc/offences": 2}
    full = bronze_in_full(spark, expected)
    for row in full["reconciliation"]:
        n = left_out.get(row["source_table"], 0)
        row |= {"read": str(int(row["read"]) + n), "erased": str(n)}
    assert bronze_as_stored(spark, out) == full
    assert not scored_tuples(spark, out) & q_tuples
    referrals = catalog.read(spark, out, catalog.REFERRALS).select("person_key").distinct().collect()
    assert {r["person_key"] for r in referrals} <= set(people(spark, out).values())


@pytest.mark.parametrize(
    "text, message",
    [
        ("nhs_number\n9434765919\n943476591\n", "line 3: not an NHS number"),
        ("9434765918\n", "line 1: not an NHS number"),
        ("nhs_number\n\n", "no NHS number in the file"),
    ],
)
def test_a_request_with_a_line_that_is_not_an_nhs_number_is_refused_without_showing_it(text, message):
    from ld_spark import erase

    with pytest.raises(InputError, match=message) as raised:
        erase.request_numbers(text, "request.csv")
    assert "943476591" not in str(raised.value) and str(raised.value).startswith("request.csv: ")


def test_numbers_are_normalised_as_bronze_normalises_them():
    from ld_spark import erase

    assert erase.request_numbers('nhs_number\n"943 476 5919"\n943-476-5919\n9434765919\n', "r") == [NHS]


def test_an_erasures_deletes_and_vacuums_are_described_in_spark_by_the_table(spark, tmp_path):
    from ld_spark import erase

    target = tmp_path / "linkage" / "cohort_index"
    io.write_delta(spark.createDataFrame([("p1",), ("p2",), ("p3",)], "person_key string"), target)
    doomed = spark.createDataFrame([("p2",)], "person_key string")
    before = sql_descriptions(spark)
    assert erase._merge_delete(spark, target, doomed, "t.person_key = s.person_key", "linkage/cohort_index") == 1
    with erase._vacuum_settings(spark):
        erase._vacuumed(spark, target, "linkage/cohort_index")
    new = {d for i, d in sql_descriptions(spark).items() if i not in before}
    assert {"ld-spark: erase from linkage/cohort_index", "ld-spark: vacuum linkage/cohort_index"} <= new
    assert sorted(r.person_key for r in io.read_delta(spark, target).collect()) == ["p1", "p3"]
    assert spark.sparkContext.getLocalProperty(io.JOB_DESCRIPTION) is None


def test_a_table_with_deletion_vectors_keeps_no_erased_row_in_its_files(spark, tmp_path):
    """With deletion vectors a DELETE marks the row gone and leaves it in its file, which the
    current version still reads: vacuuming alone would keep it. The file is rewritten first, also
    when deletion vectors were turned off after it was marked."""
    from ld_spark import erase

    target = tmp_path / "analysis" / "panel"
    spark.sql(
        f"CREATE TABLE delta.`{target}` (person_key string) USING delta "
        "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')"
    )
    spark.createDataFrame([("p1",), ("p2",)], "person_key string").coalesce(1).write.format("delta").mode(
        "append"
    ).save(str(target))
    doomed = spark.createDataFrame([("p2",)], "person_key string")
    assert erase._merge_delete(spark, target, doomed, "t.person_key = s.person_key", "analysis/panel") == 1
    assert list(target.glob("deletion_vector_*"))  # the row was marked, not removed
    # Turned off since: the table no longer makes them, and still has this one.
    spark.sql(f"ALTER TABLE delta.`{target}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'false')")
    with erase._vacuum_settings(spark):
        erase._vacuumed(spark, target, "analysis/panel")
    # Every data file left in the folder, read as plain parquet (no log, no deletion vector).
    assert [r.person_key for r in spark.read.parquet(str(target / "*.parquet")).collect()] == ["p1"]
    assert not list(target.glob("deletion_vector_*"))


def test_their_raw_rows_are_found_by_record_key_nhs_number_parent_record_and_pnc_id(spark):
    from ld_spark import erase

    landing = spark.createDataFrame(
        [
            ("hes_ae", {"AEKEY": "A1", "NEWNHSNO": "943 476 5919"}, "f.csv", 2, None),  # their number
            ("hes_ae", {"AEKEY": "A2", "NEWNHSNO": None}, "f.csv", 3, None),  # their record
            ("hes_ae", {"AEKEY": "A3", "NEWNHSNO": "4010232137"}, "f.csv", 4, None),  # someone else
            ("hes_ae", {"AEKEY": "A4", "NEWNHSNO": None}, "g.parquet", None, None),  # theirs, no line
            ("hmcts/hearings", {"hearing_id": "H1", "case_id": "C1"}, "h.csv", 2, None),  # their case's
            ("hmcts/hearings", {"hearing_id": "H2", "case_id": "C2"}, "h.csv", 3, None),
            ("pnc/offences", {"offence_id": "O1", "pnc_id": " 1990/0123457q"}, "p.csv", 2, None),  # their PNC ID
            ("pnc/offences", {"offence_id": "O2", "pnc_id": "1990/0123458R"}, "p.csv", 3, None),
        ],
        io.LANDING_SCHEMA,
    )
    hashes = spark.createDataFrame([(erase.nhs_hash(b"k", NHS),)], "nhs_hash string")
    theirs = spark.createDataFrame(
        [("hes_ae", "A2"), ("hes_ae", "A4"), ("hmcts.cases", "C1"), ("pnc.offences", "A2")],
        "source_table string, record_key string",
    )
    pnc_ids = spark.createDataFrame([("1990/0123457Q",)], "pnc string")

    def found(table):
        rows = landing.transform(erase.doomed_rows(table, theirs, pnc_ids, hashes, b"k"))
        return sorted((tuple(r) for r in rows.select("file", "line", "record_key").collect()), key=lambda r: r[2])

    assert found("hes_ae") == [("f.csv", 2, "A1"), ("f.csv", 3, "A2"), ("g.parquet", None, "A4")]
    assert found("hmcts/hearings") == [("h.csv", 2, "H1")]
    assert found("pnc/offences") == [("p.csv", 2, "O1")]
    # A parquet row is told apart by its values; every row carries its key's values.
    parquet = landing.transform(erase.doomed_rows("hes_ae", theirs, pnc_ids, hashes, b"k")).filter("line IS NULL")
    assert [(json.loads(r["row"]), list(r["key"])) for r in parquet.collect()] == [
        ({"AEKEY": "A4", "NEWNHSNO": None}, ["A4"])
    ]


def test_nothing_new_only_when_files_settings_code_and_tables_are_as_the_last_run_left_them(config, tmp_path):
    from ld_spark import refresh

    raw, out, key = tmp_path / "raw", tmp_path / "out", b"k" * 32
    first = raw / "hes_ae" / "part-0.csv"
    first.parent.mkdir(parents=True)
    first.write_text("AEKEY\nA1\n")
    layouts = {"hes_ae": ("csv", {("AEKEY",): [first]})}
    (out / "results").mkdir(parents=True)
    (out / "results" / "manifest.json").write_text("{}")
    refresh.record(out, refresh.made_from(raw, layouts, config, key), "run-1")

    def last_run(layouts=layouts, config=config, key=key):
        return refresh.unchanged_since(out, refresh.made_from(raw, layouts, config, key))

    assert last_run() == "run-1"
    # Where the raw files are, and whether to skip, are not what a run is made from.
    elsewhere = config.paths.model_copy(update={"raw": "elsewhere", "skip_unchanged": False})
    assert last_run(config=config.model_copy(update={"paths": elsewhere})) == "run-1"

    first.write_text("AEKEY\nA2\n")  # the same file name, other content
    assert last_run() is None
    first.write_text("AEKEY\nA1\n")
    second = raw / "hes_ae" / "part-1.csv"
    second.write_text("AEKEY\nA3\n")
    assert last_run(layouts={"hes_ae": ("csv", {("AEKEY",): [first, second]})}) is None
    (raw / "_truth").mkdir()
    (raw / "_truth" / "record_person.csv").write_text("source_table,record_key,person_id\n")
    assert last_run() is None
    (raw / "_truth" / "record_person.csv").unlink()
    assert last_run() == "run-1"

    other = config.analysis.model_copy(update={"pre_months": (config.analysis.pre_months[0] + 1, -1)})
    assert last_run(config=config.model_copy(update={"analysis": other})) is None
    assert last_run(key=b"j" * 32) is None

    # A table written since (ld-spark forget, another tool), or the opt-out register changed.
    for table in (catalog.PANEL, catalog.OPT_OUT):
        log = catalog.path(out, table) / "_delta_log"
        log.mkdir(parents=True)
        (log / f"{0:020d}.json").write_text("{}")
        assert last_run() is None
        refresh.record(out, refresh.made_from(raw, layouts, config, key), "run-2")
        assert last_run() == "run-2"
    (out / "results" / "manifest.json").unlink()  # results/ not whole
    assert last_run() is None


def test_incremental_only_when_the_raw_folder_has_only_grown_and_the_tables_are_as_left(config, tmp_path, monkeypatch):
    raw, out, key = tmp_path / "raw", tmp_path / "out", b"k" * 32
    first, second = raw / "hes_ae" / "part-0.csv", raw / "hes_ae" / "part-1.csv"
    first.parent.mkdir(parents=True)
    first.write_text("AEKEY\nA1\n")
    second.write_text("AEKEY\nA3\n")
    month1 = {"hes_ae": ("csv", {("AEKEY",): [first]})}
    month2 = {"hes_ae": ("csv", {("AEKEY",): [first, second]})}
    counts = {"hes_ae": {"read": 1, "loaded": 1, "quarantined": 0, "duplicate": 0, "superseded": 0, "erased": 0}}

    def commit(table, version):
        log = catalog.path(out, table) / "_delta_log"
        log.mkdir(parents=True, exist_ok=True)
        (log / f"{version:020d}.json").write_text("{}")

    def last_run(run_id="run-1", reconciliation=counts, stale=False):
        refresh.record(out, refresh.made_from(raw, month1, config, key), run_id, reconciliation, stale)

    def increment(layouts=month2, config=config, key=key):
        return refresh.increment(out, refresh.made_from(raw, layouts, config, key))

    commit(catalog.LANDING, 0)
    last_run()
    assert increment() == refresh.Increment("run-1", {"hes_ae": ["part-1.csv"]}, counts)
    assert increment(layouts=month1) is None  # nothing new: a rerun runs whole
    # Neither settings, the key nor _truth/ change what landing and bronze are made of.
    other = config.analysis.model_copy(update={"pre_months": (config.analysis.pre_months[0] + 1, -1)})
    assert increment(config=config.model_copy(update={"analysis": other})) is not None
    assert increment(key=b"j" * 32) is not None
    (raw / "_truth").mkdir()
    (raw / "_truth" / "record_person.csv").write_text("source_table,record_key,person_id\n")
    assert increment() is not None
    # Another library version (or code) makes them again.
    monkeypatch.setattr(refresh, "LIBRARIES", (*refresh.LIBRARIES, "pytest"))
    assert increment() is None
    monkeypatch.undo()
    # A file that run read, changed or gone.
    first.write_text("AEKEY\nA2\n")
    assert increment() is None
    first.write_text("AEKEY\nA1\n")
    assert increment(layouts={"hes_ae": ("csv", {("AEKEY",): [second]})}) is None
    # A run started since that did not finish.
    refresh.started(out)
    assert increment() is None
    last_run()
    # A forget started since that did not finish (landing may have lost rows bronze still has).
    refresh.mark(out, refresh.FORGETTING)
    assert increment() is None
    refresh.erased(out, {})  # it finished
    assert increment() is not None
    last_run(stale=True)  # that run's re-erasure loaded a row after linkage: the next run links it
    assert increment() is None
    last_run()
    # Landing written since: only a forget (the register written too) may have done it.
    commit(catalog.LANDING, 1)
    assert increment() is None
    commit(catalog.OPT_OUT, 0)
    assert increment() is not None
    assert increment(layouts=month1) == refresh.Increment("run-1", {}, counts)  # kept as forget left it
    commit(catalog.bronze("hes_ae"), 0)  # a table the last run did not leave
    assert increment() is None
    last_run("run-2", reconciliation=None)  # a run of an earlier version kept no reconciliation
    assert increment() is None
    assert refresh.increment(out, None) is None  # a raw folder under a URL is not hashed


def test_an_incremental_bronze_merge_replaces_the_rows_of_the_keys_it_names(spark, tmp_path):
    out = tmp_path / "out"
    table = catalog.bronze("hmcts/hearings")
    schema = "hearing_id string, adjourned boolean"
    catalog.write(spark.createDataFrame([("H1", True), ("H2", True), ("H3", False)], schema), out, table)
    keys = spark.createDataFrame([("H1",), ("H2",), ("H4",)], "hearing_id string")
    rows = spark.createDataFrame([("H1", False), ("H4", True)], schema)
    version = catalog.replace_keys(spark, rows, keys, out, table, ["hearing_id"])
    assert sorted(tuple(r) for r in catalog.read(spark, out, table).collect()) == [
        ("H1", False),
        ("H3", False),
        ("H4", True),
    ]
    changed = catalog.changes(spark, out, table, version)
    assert sorted((r["hearing_id"], r["_change_type"]) for r in changed.collect()) == [
        ("H1", "delete"),
        ("H1", "insert"),
        ("H2", "delete"),
        ("H4", "insert"),
    ]


def test_quarantined_rows_of_reclassified_keys_make_way_for_their_new_states(spark):
    quarantined = spark.createDataFrame(
        [
            ("pnc/offences", '{"offence_id":"O1"}'),
            ("pnc/offences", '{"pnc_id":"x"}'),  # no key
            ("pnc/offences", '{"offence_id":"O2"}'),
            ("hmcts/cases", '{"case_id":"O1"}'),  # the same text as a key of another table
        ],
        "source_table string, record string",
    )
    touched = {"pnc/offences": spark.createDataFrame([("O1",), (None,)], "offence_id string")}
    kept = quarantined.transform(rekey.quarantine_without(touched))
    assert sorted(tuple(r) for r in kept.collect()) == [
        ("hmcts/cases", '{"case_id":"O1"}'),
        ("pnc/offences", '{"offence_id":"O2"}'),
    ]


def test_a_key_left_with_one_version_after_an_erasure_is_loaded_and_its_quarantine_rows_go(spark, tmp_path):
    out, table = tmp_path / "out", "hmcts/hearings"
    hearing = {"hearing_id": "H1", "case_id": "C1", "hearing_date": "2017-01-02", "hearing_type": "FH"}
    rows = [
        ("hmcts/hearings", hearing | {"adjourned": "Y"}, "f.csv", 2, None),  # an erased person's
        ("hmcts/hearings", hearing | {"adjourned": "N"}, "f.csv", 3, None),  # someone else's, same key
        ("hmcts/hearings", hearing | {"hearing_id": "H2", "adjourned": "N"}, "f.csv", 4, None),
    ]
    before = spark.createDataFrame(rows, io.LANDING_SCHEMA)
    after = spark.createDataFrame(rows[1:], io.LANDING_SCHEMA)
    classified = io.landed(before, table).transform(bronze.classify(table))
    catalog.write(classified.transform(bronze.typed(table)), out, catalog.bronze(table))
    catalog.write(bronze.quarantine({table: classified}, "run-1"), out, catalog.QUARANTINE)
    assert {r["hearing_id"] for r in catalog.read(spark, out, catalog.bronze(table)).collect()} == {"H2"}

    touched = {table: spark.createDataFrame([("H1",)], "hearing_id string")}
    moved = rekey.reclassified(spark, out, before, after, touched, "run-2")
    assert moved[table] == rekey.Moved({"loaded": 1, "quarantined": -2, "duplicate": 0, "superseded": 0}, 1, 0, 1)
    loaded = catalog.read(spark, out, catalog.bronze(table)).collect()
    assert sorted((r["hearing_id"], r["adjourned"], r[io.LINE]) for r in loaded) == [("H1", False, 3), ("H2", False, 4)]
    assert catalog.read(spark, out, catalog.QUARANTINE).count() == 0
