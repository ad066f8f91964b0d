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


def event_record_person(table: str, linked: DataFrame) -> Transform:
    """An event table's rows -> (source_table, record_key, person_key) through its parent record.

    A row whose parent was not loaded keeps a null person_key, so what stays unlinked is counted,
    not lost. Parent keys are unique in record_person, so the join cannot fan out.
    """
    record_key, parent_key, parent_table = EVENT_PARENTS[table]
    parent = linked.filter(F.col("source_table") == parent_table).select(
        F.col("record_key").alias("_parent"), "person_key"
    )

    def _(events: DataFrame) -> DataFrame:
        keyed = events.select(F.expr(record_key).alias("record_key"), F.expr(parent_key).alias("_parent"))
        return keyed.join(parent, on=["_parent"], how="left").select(
            F.lit(source_name(table)).alias("source_table"), "record_key", "person_key"
        )

    return _


def record_person(identity: DataFrame, bronze: dict[str, DataFrame]) -> DataFrame:
    """Identity records' (source_table, record_key, person_key) and every event table's, each
    through its parent (parents are listed first, so each parent is linked when it is reached)."""
    everything = identity
    for table in EVENT_PARENTS:
        everything = everything.unionByName(bronze[table].transform(event_record_person(table, everything)))
    return everything
