"""Linkage: every identity-bearing record to a person, with Splink on Spark.

1. Each source's records are mapped to one identity layout and collapsed to distinct identity
   tuples: national extracts repeat the same identity in many rows, and the cost of linking
   should follow the number of distinct identities, not of events.
2. Deterministic matches on strong identifiers where that is safe: a valid NHS number with the
   same date of birth (a number alone is sometimes shared by two people), a PNC ID, an NDTMS
   client id within its agency.
3. Probabilistic (Fellegi-Sunter) matches for the rest: Splink estimates u by random sampling
   and m by EM, and scores the pairs the blocking rules generate.
4. People are the connected components of both kinds of match. Their person_key is a keyed
   HMAC-SHA256 of the component id: not reversible without the key, which never leaves the run.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from functools import reduce
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from ld_spark.config import LinkageConf, conf_dir
from ld_spark.errors import InputError
from ld_spark.session import submitted_by_spark_submit

IDENTITY = ["forename", "surname", "initials", "dob", "sex", "postcode", "nhs", "pnc", "client"]
UNIQUE_ID = "unique_id"


def _sex_129(c: str) -> str:
    return f"CASE {c} WHEN '1' THEN 'M' WHEN '2' THEN 'F' END"


def _sex_mf(c: str) -> str:
    return f"CASE WHEN {c} IN ('M', 'F') THEN {c} END"


# source_table (the contract's truth naming) -> (bronze table, record key, identity columns), as SQL.
SOURCES: dict[str, tuple[str, str, dict[str, str]]] = {
    "ld_referrals": ("ld_referrals", "referral_id", {
        "forename": "forename", "surname": "surname", "dob": "date_of_birth", "sex": _sex_mf("sex"),
        "postcode": "postcode", "nhs": "nhs_number", "pnc": "pnc_id"}),
    "hes_ae": ("hes_ae", "AEKEY", {
        "dob": "DOB", "sex": _sex_129("SEX"), "postcode": "HOMEADD", "nhs": "NEWNHSNO"}),
    "mhsds.mhs001_mpi": ("mhsds/mhs001_mpi", "concat_ws('|', OrgIDProv, LocalPatientId)", {
        "dob": "PersonBirthDate", "sex": _sex_129("Gender"), "postcode": "Postcode", "nhs": "NHSNumber"}),
    "iapt.ids001_mpi": ("iapt/ids001_mpi", "concat_ws('|', OrgIDProv, LocalPatientId)", {
        "dob": "PersonBirthDate", "sex": _sex_129("Gender"), "postcode": "Postcode", "nhs": "NHSNumber"}),
    # NDTMS holds initials, DOB, sex and postcode sector only; a client id is stable within an agency.
    "ndtms.episodes": ("ndtms/episodes", "EPISODID", {
        "initials": "concat(FINITIAL, SINITIAL)", "dob": "DOB", "sex": _sex_mf("SEX"), "postcode": "PC",
        "client": "concat_ws('|', AGNCY, CLIENTID)"}),
    "pnc.offences": ("pnc/offences", "offence_id", {
        "forename": "forename", "surname": "surname", "dob": "date_of_birth", "sex": _sex_mf("sex"),
        "postcode": "postcode", "pnc": "pnc_id"}),
    "hmcts.cases": ("hmcts/cases", "case_id", {
        "forename": "defendant_forename", "surname": "defendant_surname", "dob": "defendant_dob",
        "sex": _sex_mf("defendant_sex"), "postcode": "defendant_postcode", "pnc": "pnc_id"}),
}


def identity_records(source_table: str) -> callable:
    """A bronze table -> (source_table, record_key, identity columns) in the common layout."""
    _, key, columns = SOURCES[source_table]

    def _(bronze: DataFrame) -> DataFrame:
        def col(name: str) -> Column:
            value = columns.get(name)
            if value is None:
                return F.lit(None).cast("string").alias(name)
            return F.expr(value).cast("string").alias(name)

        out = bronze.select(F.lit(source_table).alias("source_table"), F.expr(key).alias("record_key"),
                            *[col(c) for c in IDENTITY])
        if "initials" not in columns:
            out = out.withColumn("initials", F.concat(F.substring("forename", 1, 1), F.substring("surname", 1, 1)))
        return out

    return _


def with_tuple_id(records: DataFrame) -> DataFrame:
    """The identity tuple each record carries. A record too thin to identify anyone (no strong
    identifier and no date of birth with a name or postcode) is its own tuple, so that thin
    records are never merged merely for sharing nulls."""
    strong = F.col("nhs").isNotNull() | F.col("pnc").isNotNull() | F.col("client").isNotNull()
    usable = strong | (F.col("dob").isNotNull() & (F.col("surname").isNotNull() | F.col("initials").isNotNull()
                                                   | F.col("postcode").isNotNull()))
    identity = F.concat_ws("\u001f", *[F.coalesce(F.col(c), F.lit("")) for c in IDENTITY])
    own = F.concat_ws("\u001f", "source_table", "record_key")
    return records.withColumn(UNIQUE_ID, F.sha2(F.when(usable, identity).otherwise(own), 256).substr(1, 32))


def identity_tuples(records_with_tuple: DataFrame) -> DataFrame:
    """Distinct identity tuples: what is actually linked."""
    return records_with_tuple.select(UNIQUE_ID, *IDENTITY).dropDuplicates([UNIQUE_ID])


def deterministic_edges(tuples: DataFrame) -> DataFrame:
    """(unique_id, other unique_id) for tuples sharing a strong identifier, as stars on the
    smallest id of each group, so the edge count grows with the tuples, not their square."""
    groups = [("nhs", "dob"), ("pnc",), ("client",)]
    edges = []
    for keys in groups:
        present = tuples.filter(reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in keys]))
        roots = present.groupBy(*keys).agg(F.min(UNIQUE_ID).alias("root"))
        edges.append(present.join(roots, on=list(keys), how="inner")
                     .select(F.col(UNIQUE_ID).alias("id_l"), F.col("root").alias("id_r"))
                     .filter(F.col("id_l") != F.col("id_r")))
    result = edges[0]
    for e in edges[1:]:
        result = result.unionByName(e)
    return result.distinct()


def connected_components(vertices: DataFrame, edges: DataFrame, max_iterations: int = 50) -> DataFrame:
    """(unique_id, component): each vertex labelled with the smallest id it is connected to.

    Min-label propagation; lineage is cut every round so the plan stays small.
    """
    both = edges.select("id_l", "id_r").unionByName(
        edges.select(F.col("id_r").alias("id_l"), F.col("id_l").alias("id_r"))).persist()
    labels = vertices.select(UNIQUE_ID, F.col(UNIQUE_ID).alias("component")).localCheckpoint()
    for _ in range(max_iterations):
        offered = both.join(labels, both["id_r"] == labels[UNIQUE_ID], how="inner").select(
            F.col("id_l").alias(UNIQUE_ID), F.col("component").alias("offer"))
        best = offered.groupBy(UNIQUE_ID).agg(F.min("offer").alias("offer"))
        updated = labels.join(best, on=UNIQUE_ID, how="left").select(
            UNIQUE_ID, F.least("component", F.coalesce("offer", "component")).alias("component"),
            (F.col("offer") < F.col("component")).alias("changed")).localCheckpoint()
        labels = updated.select(UNIQUE_ID, "component")
        if updated.filter("changed").limit(1).count() == 0:
            both.unpersist()
            return labels
    both.unpersist()
    raise RuntimeError(f"connected components did not converge in {max_iterations} rounds")


def splink_settings():
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    initials = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("initials"),
            # Where both records have full names, the name comparison carries this evidence.
            cll.CustomLevel("forename_l IS NOT NULL AND forename_r IS NOT NULL", "full names on both sides")
            .configure(is_null_level=True),
            # NDTMS identity is initials + DOB + sex + sector: common initials collide, so their
            # agreement is weighted by how rare the initials are.
            cll.ExactMatchLevel("initials", term_frequency_adjustments=True),
            cll.ElseLevel(),
        ],
        output_column_name="initials",
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIQUE_ID,
        comparisons=[
            cl.ForenameSurnameComparison("forename", "surname"),
            initials,
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.PostcodeComparison("postcode"),
            cl.ExactMatch("sex"),
            cl.ExactMatch("nhs"),
            cl.ExactMatch("pnc"),
        ],
        # Each rule pairs only records that agree on something specific, so the number of
        # comparisons grows with the records, not their square.
        blocking_rules_to_generate_predictions=[
            block_on("nhs"),
            block_on("pnc"),
            block_on("dob", "sex"),
            block_on("forename", "surname"),
            block_on("postcode", "sex"),
        ],
        retain_intermediate_calculation_columns=False,
    )


def _linker(spark: SparkSession, tuples: DataFrame, settings, checkpoint_dir: Path):
    from splink import Linker
    from splink.backends.spark import SparkAPI

    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    spark.sparkContext.setCheckpointDir(str(checkpoint_dir))
    db_api = SparkAPI(spark_session=spark, break_lineage_method="parquet",
                      num_partitions_on_repartition=max(2, int(spark.conf.get("spark.sql.shuffle.partitions"))))
    name = f"__ld_identity_{secrets.token_hex(4)}"
    registered = db_api.register(tuples, dataset_display_name=name, table_name=name)
    return Linker(registered, settings, log_level=logging.WARNING)


def train(linker, conf: LinkageConf) -> None:
    """Estimate the model's parameters: the prior from strong identifiers, u by random sampling,
    m by EM in two sessions (each blocked on what the other estimates). Any Splink backend."""
    from splink import block_on

    linker.training.estimate_probability_two_random_records_match(
        [block_on("nhs", "dob"), block_on("pnc")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=conf.u_max_pairs, seed=conf.u_seed,
                                                      num_chunks=conf.u_num_chunks)
    # EM iterates on the counts of each agreement pattern (a table of a few hundred rows) rather
    # than on every blocked pair: each iteration is then one tiny job, not a pass over the pairs.
    # Term frequencies (initials) still weight predictions; only their training ignores them.
    for rule in (block_on("dob", "sex"), block_on("postcode")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule, estimate_without_term_frequencies=True)


def train_and_predict(spark: SparkSession, tuples: DataFrame, conf: LinkageConf, work_dir: Path,
                      model_in: Path | None = None) -> tuple[DataFrame, str]:
    """Splink pairs at or above the match threshold, and the model as JSON text."""
    settings = str(model_in) if model_in else splink_settings()
    linker = _linker(spark, tuples, settings, work_dir / "checkpoints")
    if model_in is None:
        train(linker, conf)
    model_path = work_dir / "model.json"
    linker.misc.save_model_to_json(str(model_path), overwrite=True)
    predictions = linker.inference.predict(threshold_match_probability=conf.match_threshold, warning_mode="never")
    pairs = predictions.as_spark_dataframe().select(
        F.col(f"{UNIQUE_ID}_l").alias("id_l"), F.col(f"{UNIQUE_ID}_r").alias("id_r"), "match_weight")
    return pairs, model_path.read_text()


# HMAC-SHA256 takes keys of any length, but a short one can be guessed and every person_key then
# recomputed from component ids: 32 bytes is the hash's own size (RFC 2104 section 3).
MIN_KEY_BYTES = 32


def key_path(conf: LinkageConf) -> Path:
    """The key file: key_file as given if absolute, else in the project directory (the one
    holding conf/, or LD_SPARK_CONF_DIR's parent).

    Not the working directory: a run started from elsewhere would miss the key, make a new one and
    change every person_key. Not OUT_DIR either: a pseudonymisation key is kept apart from the
    pseudonymised data, and one key serves every output (`make run` has always kept it here).
    """
    path = Path(conf.key_file).expanduser()
    return path if path.is_absolute() else conf_dir().parent / path


def load_key(conf: LinkageConf, path: Path, master: str) -> bytes:
    """The HMAC key: from the environment, else the key file at `path` (see key_path).

    The file is created, with 32 random bytes as hex, only when the config allows it and Spark runs
    locally outside spark-submit (`master` is the session's): on a cluster a missing key is an
    error, never a fresh key that would silently change every person_key. A key file that group
    or others may read or write is refused, as ssh refuses such a private key. The key itself is
    never printed, not even in an error.
    """
    value = os.environ.get(conf.key_env)
    if value:
        return _long_enough(value.encode(), f"the key in ${conf.key_env}")
    if not path.exists() and conf.create_key_if_missing and master.startswith("local") and not submitted_by_spark_submit():
        try:
            # O_EXCL: never overwrite a key another run has just made; 0o600 from the first byte.
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(handle, "w") as key_file:
                key_file.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
            print(f"created a local pseudonymisation key in {path} (keep it out of git; set {conf.key_env} to use your own)")
    if not path.exists():
        raise InputError(f"no pseudonymisation key: set {conf.key_env} or create {path} "
                         f"(at least {MIN_KEY_BYTES} bytes, mode 600; a key is created only for a local run "
                         f"whose config sets linkage.create_key_if_missing)")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise InputError(f"pseudonymisation key file {path} is open to group or others (mode {mode:o}): chmod 600 it")
    return _long_enough(path.read_text().strip().encode(), f"the key file {path}")


def _long_enough(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise InputError(f"pseudonymisation key too short: {where} holds {len(key)} bytes, at least "
                         f"{MIN_KEY_BYTES} are needed (e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
    return key


def with_person_key(key: bytes) -> callable:
    """component -> person_key, HMAC-SHA256 under the run's key."""
    @F.pandas_udf("string")
    def keyed(components: pd.Series) -> pd.Series:
        return components.map(lambda c: hmac.new(key, c.encode(), hashlib.sha256).hexdigest())

    def _(components: DataFrame) -> DataFrame:
        return components.withColumn("person_key", keyed(F.col("component")))

    return _


def quality_cells(record_person: DataFrame, truth: DataFrame) -> DataFrame:
    """Records per (source_table, person_key found, true person): all pairwise_quality needs."""
    # A truth file may list a record once per row it appeared in (MPI submissions); one is enough.
    truth = truth.select("source_table", "record_key", F.col("person_id").alias("true_person")).distinct()
    return (record_person.join(truth, on=["source_table", "record_key"], how="inner")
            .groupBy("source_table", "person_key", "true_person").agg(F.count("*").alias("n_t")))


def pairwise_quality(cells: DataFrame) -> DataFrame:
    """Per source table: records, people found, and pairwise precision/recall/F1 of "same person".

    cells: quality_cells(record_person, truth). For a table T the pairs judged are every pair of
    records with at least one in T (the other in any table), so a table is scored on both its
    within-source and its cross-source links. Counts come from cluster sizes, never from
    materialising the pairs.
    """
    def pairs(cols: list[str], name: str) -> DataFrame:
        per_table = cells.groupBy(*cols, "source_table").agg(F.sum("n_t").alias("n_t"))
        total = per_table.groupBy(*cols).agg(F.sum("n_t").alias("n"))
        return (per_table.join(total, on=cols, how="inner")
                .withColumn(name, F.col("n_t") * (F.col("n") - F.col("n_t")) + F.col("n_t") * (F.col("n_t") - 1) / 2)
                .groupBy("source_table").agg(F.sum(name).alias(name)))

    counts = cells.groupBy("source_table").agg(F.sum("n_t").alias("n_records"),
                                               F.countDistinct("person_key").alias("n_persons"))
    q = (counts.join(pairs(["person_key"], "predicted"), "source_table", "left")
         .join(pairs(["true_person"], "actual"), "source_table", "left")
         .join(pairs(["person_key", "true_person"], "correct"), "source_table", "left")
         .fillna(0, ["predicted", "actual", "correct"]))
    # try_divide: null, not an error, where a table has no pairs (or precision + recall is 0).
    return (q.withColumn("precision", F.try_divide(F.col("correct"), F.col("predicted")))
            .withColumn("recall", F.try_divide(F.col("correct"), F.col("actual")))
            .withColumn("f1", F.try_divide(2 * F.col("precision") * F.col("recall"), F.col("precision") + F.col("recall")))
            .select("source_table", "n_records", "n_persons", "precision", "recall", "f1"))


def person_attributes(records: DataFrame, record_person: DataFrame) -> DataFrame:
    """The analysis layer's person table: person_key, year of birth and sex, nothing else.

    Each is the value most of a person's records agree on (ties to the smaller value); the full
    date of birth, names and every identifier stay in the linkage layer.
    """
    linked = records.join(record_person, on=["source_table", "record_key"], how="inner")

    def most_common(column: str, value: Column) -> DataFrame:
        counted = (linked.select("person_key", value.alias(column)).filter(F.col(column).isNotNull())
                   .groupBy("person_key", column).count())
        ranked = Window.partitionBy("person_key").orderBy(F.col("count").desc(), F.col(column))
        return counted.withColumn("_rank", F.row_number().over(ranked)).filter("_rank = 1").select("person_key", column)

    people = record_person.select("person_key").distinct()
    return (people.join(most_common("year_of_birth", F.substring("dob", 1, 4).cast("int")), "person_key", "left")
            .join(most_common("sex", F.col("sex")), "person_key", "left"))


# Event tables reach a person through their parent record:
# bronze table -> (record key SQL, parent key SQL, parent's source_table in record_person).
# Listed parents first, so each table's parent is already linked when it is reached.
EVENT_PARENTS: dict[str, tuple[str, str, str]] = {
    "mhsds/mhs101_referral": ("ServiceRequestId", "concat_ws('|', OrgIDProv, LocalPatientId)", "mhsds.mhs001_mpi"),
    "mhsds/mhs401_mha_period": ("MHActLegalStatusClassPeriodId", "concat_ws('|', OrgIDProv, LocalPatientId)",
                                "mhsds.mhs001_mpi"),
    "mhsds/mhs201_care_contact": ("CareContactId", "ServiceRequestId", "mhsds.mhs101_referral"),
    "iapt/ids101_referral": ("ServiceRequestId", "concat_ws('|', OrgIDProv, LocalPatientId)", "iapt.ids001_mpi"),
    "iapt/ids201_care_contact": ("CareContactId", "ServiceRequestId", "iapt.ids101_referral"),
    "ndtms/modalities": ("MODID", "EPISODID", "ndtms.episodes"),
    "ndtms/top": ("TOPID", "EPISODID", "ndtms.episodes"),
    "hmcts/hearings": ("hearing_id", "case_id", "hmcts.cases"),
}


def source_name(table: str) -> str:
    """`mhsds/mhs101_referral` -> `mhsds.mhs101_referral`, the contract's source_table naming."""
    return table.replace("/", ".")


def event_record_person(table: str, linked: DataFrame) -> callable:
    """An event table's rows -> (source_table, record_key, person_key) through its parent record.

    A row whose parent was not loaded keeps a null person_key, so what stays unlinked is counted,
    not lost. Parent keys are unique in record_person, so the join cannot fan out.
    """
    record_key, parent_key, parent_table = EVENT_PARENTS[table]
    parent = linked.filter(F.col("source_table") == parent_table).select(
        F.col("record_key").alias("_parent"), "person_key")

    def _(events: DataFrame) -> DataFrame:
        keyed = events.select(F.expr(record_key).alias("record_key"), F.expr(parent_key).alias("_parent"))
        return (keyed.join(parent, on="_parent", how="left")
                .select(F.lit(source_name(table)).alias("source_table"), "record_key", "person_key"))

    return _
