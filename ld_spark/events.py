"""Health outcome events of the cohort members: bronze event tables -> (person_key, outcome, event_date).

Each outcome of contract section 4 is one rule: which bronze table, which record key (as
`linkage/record_person` holds it), which date, and which rows count. The rules are the
evaluation's definitions, so they live together here where a reviewer can read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ld_spark.contract import source_name
from ld_spark.frames import Transform, union_all

ATTENDED = "AttendOrDNACode IN ('5', '6')"
# Sections 2, 3, 5 of the Mental Health Act, s135 and s136: detentions; 01 is an informal patient.
DETENTION_CODES = "LegalStatusCode IN ('02', '03', '04', '19', '20')"


NEW_DETENTION = "new_detention"
# The longest a detention of each section lasts without another period after it: s2 28 days, s3
# six months (a renewal is a period of its own), s4 72 hours, s135/s136 24 hours + 12.
LONGEST_DAYS = {"02": 28, "03": 183, "04": 3, "19": 2, "20": 2}


def with_new_detention(periods: DataFrame) -> DataFrame:
    """MHSDS MHA legal status periods -> + new_detention: a detention period (DETENTION_CODES)
    that does not continue the patient's detention at the provider. One detention is often
    several periods - a section 136 then a section 2, a section 2 renewed as a section 3 - each
    its own record; the later ones start by the day after an earlier one of the same patient
    (OrgIDProv, LocalPatientId) ends (an open one: LONGEST_DAYS after its start). Only the first
    of such a chain is a new detention. A period without a patient id is a chain of its own."""
    detention = F.coalesce(F.expr(DETENTION_CODES), F.lit(False))
    start, end = F.col("StartDateMHActLegalStatusClass"), F.col("EndDateMHActLegalStatusClass")
    earlier = (
        Window.partitionBy("OrgIDProv", "LocalPatientId")
        .orderBy(start.asc_nulls_last(), "MHActLegalStatusClassPeriodId")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    # An open period (no end date: never closed, or still running when last sent) runs at most
    # as long as the Act allows it, so one never closed does not swallow every later detention.
    longest = F.lit(None).cast("int")
    for code, days in sorted(LONGEST_DAYS.items()):
        longest = F.when(F.col("LegalStatusCode") == code, F.lit(days)).otherwise(longest)
    # The latest day an earlier detention period of the patient runs to.
    running_to = F.max(F.when(detention, F.coalesce(end, F.date_add(start, longest)))).over(earlier)
    continues = F.col("LocalPatientId").isNotNull() & F.coalesce(running_to >= F.date_sub(start, 1), F.lit(False))
    return periods.withColumn(NEW_DETENTION, detention & ~continues)


# Columns a table's rules need beyond its own: added once, when the table is read.
PREPARED: dict[str, Callable[[DataFrame], DataFrame]] = {"mhsds/mhs401_mha_period": with_new_detention}


class Rule(NamedTuple):
    table: str  # bronze table (landing path)
    record_key: str  # SQL expression: the key linkage/record_person holds for this table's rows
    event_date: str  # SQL expression: the date that places the event in a month
    counts: str  # SQL predicate: which rows are this outcome


# The outcomes of the person-month panel, in the order of contract section 4.
OUTCOMES: dict[str, Rule] = {
    "ae_attendances": Rule("hes_ae", "AEKEY", "ARRIVALDATE", "true"),
    # An L&D team's own referral (team type D02, in whatever case it was keyed) is the
    # intervention, not an onward MH referral.
    "mh_referrals": Rule(
        "mhsds/mhs101_referral",
        "ServiceRequestId",
        "ReferralRequestReceivedDate",
        "upper(coalesce(ServTeamTypeRefToMH, '')) <> 'D02'",
    ),
    "mh_contacts": Rule(
        "mhsds/mhs201_care_contact", "CareContactId", "CareContDate", f"{ATTENDED} AND ConsMechanismMH = '01'"
    ),
    # A detention period that does not continue one already running is a new detention, dated by
    # its start (with_new_detention: a section 2 followed by a section 3 is one detention).
    "mha_detentions": Rule(
        "mhsds/mhs401_mha_period", "MHActLegalStatusClassPeriodId", "StartDateMHActLegalStatusClass", NEW_DETENTION
    ),
    "iapt_referrals": Rule("iapt/ids101_referral", "ServiceRequestId", "ReferralRequestReceivedDate", "true"),
    "iapt_attendances": Rule("iapt/ids201_care_contact", "CareContactId", "CareContDate", ATTENDED),
    "drug_referrals": Rule("ndtms/episodes", "EPISODID", "REFLD", "true"),
    "drug_attendances": Rule("ndtms/modalities", "MODID", "MODST", "true"),
}

# Any record of a health source (attended or not, any team or legal status): "prior contact".
HEALTH_CONTACTS: dict[str, Rule] = {
    "ae_attendances": OUTCOMES["ae_attendances"],
    "mh_referrals": Rule("mhsds/mhs101_referral", "ServiceRequestId", "ReferralRequestReceivedDate", "true"),
    "mh_contacts": Rule("mhsds/mhs201_care_contact", "CareContactId", "CareContDate", "true"),
    "mha_periods": Rule(
        "mhsds/mhs401_mha_period", "MHActLegalStatusClassPeriodId", "StartDateMHActLegalStatusClass", "true"
    ),
    "iapt_referrals": OUTCOMES["iapt_referrals"],
    "iapt_contacts": Rule("iapt/ids201_care_contact", "CareContactId", "CareContDate", "true"),
    "drug_referrals": OUTCOMES["drug_referrals"],
    "drug_attendances": OUTCOMES["drug_attendances"],
}
HEALTH_CONTACT = "health_contacts"
# PNC outcomes follow the proven-reoffending rules (ld_spark/justice.py), not a one-table rule:
# proven offences (index offence left out) and police contacts (records that are not proven).
JUSTICE_OUTCOMES = ["offences", "police_contacts"]
SERIES_OUTCOMES = [*OUTCOMES, *JUSTICE_OUTCOMES]
PANEL_OUTCOMES = [*SERIES_OUTCOMES, HEALTH_CONTACT]


def rule_events(outcome: str, rule: Rule) -> Transform:
    """A bronze table -> (record_key, outcome, event_date) for the rows the rule counts."""

    def _(bronze: DataFrame) -> DataFrame:
        return bronze.filter(F.expr(rule.counts) & F.expr(rule.event_date).isNotNull()).select(
            F.expr(rule.record_key).alias("record_key"),
            F.lit(outcome).alias("outcome"),
            F.expr(rule.event_date).alias("event_date"),
        )

    return _


def with_person(table: str, record_person: DataFrame, people: DataFrame) -> Transform:
    """(record_key, ...) -> (person_key, ...) for the rows of `people` only.

    `record_key` is the key linkage/record_person holds for `table` (see Rule.record_key).

    record_person holds one row per (source_table, record_key), so the join cannot fan out;
    restricting it to `people` first keeps the join as small as the cohorts, not the nation.
    """
    keys = (
        record_person.filter(F.col("source_table") == source_name(table))
        .join(F.broadcast(people.select("person_key").distinct()), on=["person_key"], how="inner")
        .select("record_key", "person_key")
    )

    def _(events: DataFrame) -> DataFrame:
        joined = events.join(keys, on=["record_key"], how="inner")
        return joined.select("person_key", *[c for c in events.columns if c != "record_key"])

    return _


def cohort_events(bronze: Callable[[str], DataFrame], record_person: DataFrame, people: DataFrame) -> DataFrame:
    """Every outcome event and every health-source contact of `people`.

    bronze: table name -> its bronze DataFrame (the caller's reader; no I/O here).
    Returns person_key, outcome, event_date; health contacts carry outcome `health_contacts`.

    Every table's events go through one join with the people's linked keys, on (source_table,
    record_key): a join per table made a Spark job or more per table, each reading record_person
    and broadcasting the people again.
    """
    rules = [*OUTCOMES.items(), *[(HEALTH_CONTACT, rule) for rule in HEALTH_CONTACTS.values()]]
    tables = list(dict.fromkeys(rule.table for _, rule in rules))
    parts = []
    for table in tables:
        frame, name = bronze(table), F.lit(source_name(table))  # read once, for all its rules
        if table in PREPARED:
            frame = PREPARED[table](frame)
        parts += [
            frame.transform(rule_events(o, rule)).withColumn("source_table", name)
            for o, rule in rules
            if rule.table == table
        ]
    dated = union_all(parts)
    keys = (
        record_person.filter(F.col("source_table").isin(*[source_name(t) for t in tables]))
        .join(F.broadcast(people.select("person_key").distinct()), on=["person_key"], how="inner")
        .select("source_table", "record_key", "person_key")
    )
    return dated.join(keys, on=["source_table", "record_key"], how="inner").select(
        "person_key", "outcome", "event_date"
    )


# NDTMS Treatment Outcomes Profile: self-rated psychological health, physical health and quality
# of life, each 0-20. A review's score is their mean; a review missing any of them has none.
TOP_RATINGS = ["PSYHSTAT", "PHSTAT", "QUALLIFE"]


def self_rated_health(top: DataFrame, record_person: DataFrame, people: DataFrame) -> DataFrame:
    """Bronze ndtms/top -> person_key, event_date, score for the rows of `people`."""
    rated = F.lit(True)
    for rating in TOP_RATINGS:
        rated = rated & F.col(rating).isNotNull()
    rows = top.filter(rated & F.col("TOPDATE").isNotNull()).select(
        F.col("TOPID").alias("record_key"),
        F.col("TOPDATE").alias("event_date"),
        (sum(F.col(r) for r in TOP_RATINGS) / len(TOP_RATINGS)).alias("score"),
    )
    return rows.transform(with_person("ndtms/top", record_person, people))
