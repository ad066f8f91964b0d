"""Identity records: each source's identifiers in one layout, collapsed to distinct tuples.

National extracts repeat the same identity in many rows, and the cost of linking should follow
the number of distinct identities, not of events. Thin records (no strong identifier and no date
of birth with a name or postcode) are each their own tuple, never merged for sharing nulls.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ld_spark.frames import Transform, union_all

IDENTITY = ["forename", "surname", "initials", "dob", "sex", "postcode", "nhs", "pnc", "client"]

UNIQUE_ID = "unique_id"
CONTENT = "content"  # a hash of an identity tuple's values (content())


def _sex_129(c: str) -> str:
    return f"CASE {c} WHEN '1' THEN 'M' WHEN '2' THEN 'F' END"


def _sex_mf(c: str) -> str:
    return f"CASE WHEN {c} IN ('M', 'F') THEN {c} END"


# source_table (the contract's truth naming) -> (contract table, record key, identity columns), as SQL.
SOURCES: dict[str, tuple[str, str, dict[str, str]]] = {
    "ld_referrals": (
        "ld_referrals",
        "referral_id",
        {
            "forename": "forename",
            "surname": "surname",
            "dob": "date_of_birth",
            "sex": _sex_mf("sex"),
            "postcode": "postcode",
            "nhs": "nhs_number",
            "pnc": "pnc_id",
        },
    ),
    "hes_ae": ("hes_ae", "AEKEY", {"dob": "DOB", "sex": _sex_129("SEX"), "postcode": "HOMEADD", "nhs": "NEWNHSNO"}),
    "mhsds.mhs001_mpi": (
        "mhsds/mhs001_mpi",
        "concat_ws('|', OrgIDProv, LocalPatientId)",
        {"dob": "PersonBirthDate", "sex": _sex_129("Gender"), "postcode": "Postcode", "nhs": "NHSNumber"},
    ),
    "iapt.ids001_mpi": (
        "iapt/ids001_mpi",
        "concat_ws('|', OrgIDProv, LocalPatientId)",
        {"dob": "PersonBirthDate", "sex": _sex_129("Gender"), "postcode": "Postcode", "nhs": "NHSNumber"},
    ),
    # NDTMS holds initials, DOB, sex and postcode sector only; a client id is stable within an agency.
    # Without either part there is no client (concat's null), never the agency alone: a strong
    # identifier every blank-CLIENTID episode of an agency shared would merge their people.
    "ndtms.episodes": (
        "ndtms/episodes",
        "EPISODID",
        {
            "initials": "concat(FINITIAL, SINITIAL)",
            "dob": "DOB",
            "sex": _sex_mf("SEX"),
            "postcode": "PC",
            "client": "concat(AGNCY, '|', CLIENTID)",
        },
    ),
    "pnc.offences": (
        "pnc/offences",
        "offence_id",
        {
            "forename": "forename",
            "surname": "surname",
            "dob": "date_of_birth",
            "sex": _sex_mf("sex"),
            "postcode": "postcode",
            "pnc": "pnc_id",
        },
    ),
    "hmcts.cases": (
        "hmcts/cases",
        "case_id",
        {
            "forename": "defendant_forename",
            "surname": "defendant_surname",
            "dob": "defendant_dob",
            "sex": _sex_mf("defendant_sex"),
            "postcode": "defendant_postcode",
            "pnc": "pnc_id",
        },
    ),
}


def identity_records(source_table: str) -> Transform:
    """A bronze table -> (source_table, record_key, identity columns) in the common layout."""
    _, key, columns = SOURCES[source_table]

    def _(bronze: DataFrame) -> DataFrame:
        def col(name: str) -> Column:
            value = columns.get(name)
            if value is None:
                return F.lit(None).cast("string").alias(name)
            return F.expr(value).cast("string").alias(name)

        out = bronze.select(
            F.lit(source_table).alias("source_table"), F.expr(key).alias("record_key"), *[col(c) for c in IDENTITY]
        )
        if "initials" not in columns:
            out = out.withColumn("initials", F.concat(F.substring("forename", 1, 1), F.substring("surname", 1, 1)))
        return out

    return _


def records(bronze: dict[str, DataFrame]) -> DataFrame:
    """Every identity source's bronze records (bronze: contract table -> its bronze table) in the
    common layout, each with its tuple id."""
    parts = [bronze[table].transform(identity_records(source)) for source, (table, _, _) in SOURCES.items()]
    return union_all(parts).transform(with_tuple_id)


def with_tuple_id(records: DataFrame) -> DataFrame:
    """The identity tuple each record carries. A record too thin to identify anyone (no strong
    identifier and no date of birth with a name or postcode) is its own tuple, so that thin
    records are never merged merely for sharing nulls."""
    strong = F.col("nhs").isNotNull() | F.col("pnc").isNotNull() | F.col("client").isNotNull()
    usable = strong | (
        F.col("dob").isNotNull()
        & (F.col("surname").isNotNull() | F.col("initials").isNotNull() | F.col("postcode").isNotNull())
    )
    identity = F.concat_ws("\u001f", *[F.coalesce(F.col(c), F.lit("")) for c in IDENTITY])
    own = F.concat_ws("\u001f", "source_table", "record_key")
    return records.withColumn(UNIQUE_ID, F.sha2(F.when(usable, identity).otherwise(own), 256).substr(1, 32))


def content() -> Column:
    """A hash of an identity tuple's values (a null apart from an empty value). A usable tuple's
    id is already one; a thin tuple's id is its record's, whose values can change under it (a
    record resent in a later submission, or normalised otherwise by another version)."""
    values = [F.coalesce(F.col(c), F.lit("\u0000")) for c in IDENTITY]
    return F.sha2(F.concat_ws("\u001f", *values), 256).substr(1, 32).alias(CONTENT)


def identity_tuples(records_with_tuple: DataFrame) -> DataFrame:
    """Distinct identity tuples: what is actually linked."""
    return records_with_tuple.select(UNIQUE_ID, *IDENTITY).dropDuplicates([UNIQUE_ID])


def person_attributes(records: DataFrame, record_person: DataFrame) -> DataFrame:
    """The analysis layer's person table: person_key, year of birth and sex, nothing else.

    Each is the value most of a person's records agree on (ties to the smaller value); the full
    date of birth, names and every identifier stay in the linkage layer.
    """
    # One join and one aggregate (Spark's mode: ties to the lowest value, nulls left out). With a
    # join and a window per attribute, writing the table took 12.5 s of Spark's busy time at scale 1
    # (benchmarks/results/profile_scale_1_2026-12-07.md).
    identity = records.select("source_table", "record_key", F.substring("dob", 1, 4).cast("int").alias("year"), "sex")
    return (
        record_person.join(identity, on=["source_table", "record_key"], how="left")
        .groupBy("person_key")
        .agg(F.mode("year", deterministic=True).alias("year_of_birth"), F.mode("sex", deterministic=True).alias("sex"))
    )
