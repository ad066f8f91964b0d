"""Event tables (contacts, modalities, hearings, ...) reach their person through their parent record."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.contract import source_name
from ld_spark.frames import Transform

# Event tables reach a person through their parent record:
# bronze table -> (record key SQL, parent key SQL, parent's source_table in record_person).
# Listed parents first, so each table's parent is already linked when it is reached.
EVENT_PARENTS: dict[str, tuple[str, str, str]] = {
    "mhsds/mhs101_referral": ("ServiceRequestId", "concat_ws('|', OrgIDProv, LocalPatientId)", "mhsds.mhs001_mpi"),
    "mhsds/mhs401_mha_period": (
        "MHActLegalStatusClassPeriodId",
        "concat_ws('|', OrgIDProv, LocalPatientId)",
        "mhsds.mhs001_mpi",
    ),
    "mhsds/mhs201_care_contact": ("CareContactId", "ServiceRequestId", "mhsds.mhs101_referral"),
    "iapt/ids101_referral": ("ServiceRequestId", "concat_ws('|', OrgIDProv, LocalPatientId)", "iapt.ids001_mpi"),
    "iapt/ids201_care_contact": ("CareContactId", "ServiceRequestId", "iapt.ids101_referral"),
    "ndtms/modalities": ("MODID", "EPISODID", "ndtms.episodes"),
    "ndtms/top": ("TOPID", "EPISODID", "ndtms.episodes"),
    "hmcts/hearings": ("hearing_id", "case_id", "hmcts.cases"),
}


# The event tables' names in record_person: a parent among them is itself an event row.
_EVENT_SOURCES = {source_name(table) for table in EVENT_PARENTS}


def event_parent(table: str, earlier: DataFrame | None = None) -> Transform:
    """An event table's rows -> (source_table, record_key, identity_table, identity_key): the
    identity record each reaches its person through, its parent's own where the parent is an
    event row (`earlier`: event_parent's rows of the tables listed before it).

    A row whose parent was not loaded keeps it as its key, or a null one through an event parent,
    so that record_person leaves it unlinked and counted, not lost. Record keys are unique in a
    bronze table, so the join cannot fan out.
    """
    record_key, parent_key, parent_table = EVENT_PARENTS[table]

    def _(events: DataFrame) -> DataFrame:
        keyed = events.select(
            F.lit(source_name(table)).alias("source_table"),
            F.expr(record_key).alias("record_key"),
            F.expr(parent_key).alias("_parent"),
        )
        if parent_table not in _EVENT_SOURCES:
            return keyed.select(
                "source_table",
                "record_key",
                F.lit(parent_table).alias("identity_table"),
                F.col("_parent").alias("identity_key"),
            )
        if earlier is None:
            raise ValueError(f"{table}: its parent {parent_table} is an event table, and no earlier rows were given")
        parents = earlier.filter(F.col("source_table") == parent_table).select(
            F.col("record_key").alias("_parent"), "identity_table", "identity_key"
        )
        return keyed.join(parents, on=["_parent"], how="left").drop("_parent")

    return _


def event_parents(bronze: dict[str, DataFrame]) -> DataFrame:
    """event_parent's rows of every event table (bronze: bronze table -> DataFrame). They do not
    depend on the linkage: each linkage (the main one, each sensitivity threshold's) then reaches
    its event rows' people with one join (record_person)."""
    parents = None
    for table in EVENT_PARENTS:  # parents first: each event parent is resolved when it is reached
        rows = bronze[table].transform(event_parent(table, parents))
        parents = rows if parents is None else parents.unionByName(rows)
    return parents


def record_person(identity: DataFrame, parents: DataFrame) -> DataFrame:
    """Identity records' (source_table, record_key, person_key) and every event row's, the person
    of its identity record (parents: event_parents). Identity record keys are unique in a linkage,
    so the join cannot fan out."""
    people = identity.select(
        F.col("source_table").alias("identity_table"), F.col("record_key").alias("identity_key"), "person_key"
    )
    reached = parents.join(people, on=["identity_table", "identity_key"], how="left")
    return identity.select("source_table", "record_key", "person_key").unionByName(
        reached.select("source_table", "record_key", "person_key")
    )
