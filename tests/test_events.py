"""Outcome definitions: which source rows count as which outcome, and for whom."""

from __future__ import annotations

import datetime as dt

from ld_spark.events import HEALTH_CONTACT, cohort_events, with_new_detention

D = dt.date

MHS101 = (
    "ServiceRequestId string, LocalPatientId string, OrgIDProv string, ReferralRequestReceivedDate date, "
    "SourceOfReferralMH string, ServTeamTypeRefToMH string"
)
MHS201 = "CareContactId string, CareContDate date, AttendOrDNACode string, ConsMechanismMH string"
MHS401 = (
    "MHActLegalStatusClassPeriodId string, OrgIDProv string, LocalPatientId string, LegalStatusCode string, "
    "StartDateMHActLegalStatusClass date, EndDateMHActLegalStatusClass date"
)


def _bronze(spark):
    """Tiny bronze tables: rows chosen to sit each side of every outcome rule."""
    tables = {
        "hes_ae": spark.createDataFrame(
            [("A1", D(2017, 1, 5)), ("A2", None), ("A3", D(2017, 1, 6))], "AEKEY string, ARRIVALDATE date"
        ),
        "mhsds/mhs101_referral": spark.createDataFrame(
            [
                ("R1", "L1", "P1", D(2017, 1, 1), "E5", "C01"),
                ("R2", "L1", "P1", D(2017, 2, 1), "E5", "D02"),  # the L&D team itself
                ("R3", "L1", "P1", D(2017, 3, 1), "A1", None),
                ("R4", "L1", "P1", D(2017, 4, 1), "E5", "d02"),  # the L&D team, keyed in lower case
            ],
            MHS101,
        ),
        "mhsds/mhs201_care_contact": spark.createDataFrame(
            [
                ("C1", D(2017, 1, 2), "5", "01"),
                ("C2", D(2017, 1, 3), "6", "01"),
                ("C3", D(2017, 1, 4), "5", "02"),  # attended, by telephone
                ("C4", D(2017, 1, 5), "7", "01"),  # did not attend
            ],
            MHS201,
        ),
        "mhsds/mhs401_mha_period": spark.createDataFrame(
            [
                ("M1", "P1", "L1", "03", D(2017, 1, 6), D(2017, 1, 6)),
                ("M2", "P1", "L1", "20", D(2017, 1, 8), None),  # two days after M1 ended: a new one
                ("M3", "P1", "L1", "01", D(2017, 1, 8), None),
            ],
            MHS401,
        ),
        "iapt/ids101_referral": spark.createDataFrame(
            [("I1", D(2017, 1, 9))], "ServiceRequestId string, ReferralRequestReceivedDate date"
        ),
        "iapt/ids201_care_contact": spark.createDataFrame(
            [("J1", D(2017, 1, 10), "5"), ("J2", D(2017, 1, 11), "2")],
            "CareContactId string, CareContDate date, AttendOrDNACode string",
        ),
        "ndtms/episodes": spark.createDataFrame([("E1", D(2017, 1, 12))], "EPISODID string, REFLD date"),
        "ndtms/modalities": spark.createDataFrame([("O1", D(2017, 1, 13)), ("O2", None)], "MODID string, MODST date"),
    }
    return tables.__getitem__


def _record_person(spark):
    rows = [
        ("hes_ae", "A1", "p1"),
        ("hes_ae", "A2", "p1"),
        ("hes_ae", "A3", "p2"),  # A3: someone else
        *[("mhsds.mhs101_referral", k, "p1") for k in ("R1", "R2", "R3", "R4")],
        *[("mhsds.mhs201_care_contact", k, "p1") for k in ("C1", "C2", "C3", "C4")],
        *[("mhsds.mhs401_mha_period", k, "p1") for k in ("M1", "M2", "M3")],
        ("iapt.ids101_referral", "I1", "p1"),
        ("iapt.ids201_care_contact", "J1", "p1"),
        ("iapt.ids201_care_contact", "J2", "p1"),
        ("ndtms.episodes", "E1", "p1"),
        ("ndtms.modalities", "O1", "p1"),
        ("ndtms.modalities", "O2", "p1"),
    ]
    return spark.createDataFrame(rows, "source_table string, record_key string, person_key string")


def _counts(spark):
    people = spark.createDataFrame([("p1",)], "person_key string")
    events = cohort_events(_bronze(spark), _record_person(spark), people)
    out: dict[str, int] = {}
    for r in events.collect():
        assert r.person_key == "p1"
        out[r.outcome] = out.get(r.outcome, 0) + 1
    return out


def test_l_and_d_team_referrals_are_not_specialist_mh_referrals_but_are_contacts(spark):
    counts = _counts(spark)
    assert counts["mh_referrals"] == 2  # R1 and R3, not the D02 team's R2 or R4


def test_only_attended_face_to_face_contacts_and_detentions_count(spark):
    counts = _counts(spark)
    assert counts["mh_contacts"] == 2  # C1, C2
    assert counts["mha_detentions"] == 2  # s3 and s136, not the informal 01
    assert counts["iapt_attendances"] == 1  # J1 attended, J2 did not
    assert counts["iapt_referrals"] == 1 and counts["drug_referrals"] == 1
    assert counts["drug_attendances"] == 1  # a modality without a start is no attendance
    assert counts["ae_attendances"] == 1  # an A&E record without a date is no event


def test_other_peoples_events_are_left_out(spark):
    assert _counts(spark)["ae_attendances"] == 1  # A3 belongs to p2, who is not in the cohorts


def test_every_dated_health_record_is_a_prior_contact_whatever_its_kind(spark):
    # A1, R1-R4, C1-C4, M1-M3, I1, J1-J2, E1, O1: every dated health-source record.
    assert _counts(spark)[HEALTH_CONTACT] == 17


def test_a_key_two_sources_share_gives_each_sources_event_to_that_sources_person(spark):
    # Referral ids are each service's own: S1 is p1's MHSDS referral and p2's IAPT referral.
    tables = {
        "mhsds/mhs101_referral": spark.createDataFrame([("S1", "L1", "P1", D(2017, 1, 1), "E5", "C01")], MHS101),
        "iapt/ids101_referral": spark.createDataFrame(
            [("S1", D(2017, 2, 1))], "ServiceRequestId string, ReferralRequestReceivedDate date"
        ),
    }
    empty = _bronze(spark)

    def bronze(table):
        return tables[table] if table in tables else empty(table).limit(0)

    record_person = spark.createDataFrame(
        [("mhsds.mhs101_referral", "S1", "p1"), ("iapt.ids101_referral", "S1", "p2")],
        "source_table string, record_key string, person_key string",
    )
    people = spark.createDataFrame([("p1",), ("p2",)], "person_key string")
    events = cohort_events(bronze, record_person, people)
    assert sorted((r.person_key, r.outcome, r.event_date) for r in events.collect()) == [
        ("p1", HEALTH_CONTACT, D(2017, 1, 1)),
        ("p1", "mh_referrals", D(2017, 1, 1)),
        ("p2", HEALTH_CONTACT, D(2017, 2, 1)),
        ("p2", "iapt_referrals", D(2017, 2, 1)),
    ]


def test_a_detention_that_continues_one_still_running_is_no_new_detention(spark):
    periods = spark.createDataFrame(
        [
            ("A1", "P1", "L1", "20", D(2017, 1, 7), D(2017, 1, 8)),  # s136: new
            ("A2", "P1", "L1", "02", D(2017, 1, 9), D(2017, 2, 5)),  # the day after: s2 continues it
            ("A3", "P1", "L1", "03", D(2017, 2, 5), None),  # s2 renewed as s3: continues
            ("A4", "P1", "L1", "01", D(2017, 6, 1), D(2017, 6, 30)),  # informal: no detention
            ("A5", "P2", "L1", "02", D(2017, 1, 20), None),  # another provider's patient L1: new
            ("B1", "P1", "L2", "02", D(2017, 3, 1), D(2017, 3, 10)),  # new
            ("B2", "P1", "L2", "01", D(2017, 3, 11), D(2017, 3, 20)),  # informal after it
            ("B3", "P1", "L2", "03", D(2017, 3, 12), D(2017, 4, 1)),  # two days after B1 ended: new
            ("B4", "P1", "L2", "02", D(2017, 3, 20), D(2017, 3, 25)),  # within B3: continues
            # An s136 never closed lasts as long as the Act allows, not for ever: L3's s2 months
            # later is a new detention, its s3 18 days into the open s2 (28 days at most) is not.
            ("C1", "P1", "L3", "20", D(2017, 1, 1), None),
            ("C2", "P1", "L3", "02", D(2017, 6, 1), None),
            ("C3", "P1", "L3", "03", D(2017, 6, 19), None),
            ("N1", "P1", None, "02", D(2017, 1, 1), None),  # no patient id: each its own
            ("N2", "P1", None, "03", D(2017, 1, 2), None),
        ],
        MHS401,
    )
    got = {r.MHActLegalStatusClassPeriodId: r.new_detention for r in with_new_detention(periods).collect()}
    assert sorted(k for k, new in got.items() if new) == ["A1", "A5", "B1", "B3", "C1", "C2", "N1", "N2"]
