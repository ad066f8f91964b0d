"""Probabilistic (Fellegi-Sunter) matching with Splink: u by random sampling, m by EM, and the
pairs the blocking rules generate scored against the match threshold.

A run that predicts with the model an earlier run scored with (linkage.model_in) scores only
the pairs those scores cannot stand for, and carries the rest over (`Earlier`, `Scored`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import secrets
from typing import NamedTuple

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ld_spark import fs
from ld_spark.config import LinkageConf
from ld_spark.errors import InputError
from ld_spark.frames import arrow_frame
from ld_spark.link.blocking import PREDICTION_RULES
from ld_spark.link.identity import CONTENT, UNIQUE_ID, content


def splink_settings():
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    initials = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("initials"),
            # Where both records have full names, the name comparison carries this evidence.
            cll.CustomLevel("forename_l IS NOT NULL AND forename_r IS NOT NULL", "full names on both sides").configure(
                is_null_level=True
            ),
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
        # Counted and held to a budget before Splink runs (blocking.py).
        blocking_rules_to_generate_predictions=[block_on(*keys) for keys in PREDICTION_RULES],
        retain_intermediate_calculation_columns=False,
    )


def _linker(spark: SparkSession, tuples: DataFrame, settings, checkpoint_dir: fs.Location):
    from splink import Linker
    from splink.backends.spark import SparkAPI

    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    spark.sparkContext.setCheckpointDir(str(checkpoint_dir))
    db_api = SparkAPI(
        spark_session=spark,
        break_lineage_method="parquet",
        num_partitions_on_repartition=max(2, int(spark.conf.get("spark.sql.shuffle.partitions"))),
    )
    name = f"__ld_identity_{secrets.token_hex(4)}"
    registered = db_api.register(tuples, dataset_display_name=name, table_name=name)
    return Linker(registered, settings, log_level=logging.WARNING)


def train(linker, conf: LinkageConf) -> None:
    """Estimate the model's parameters: the prior from strong identifiers, u by random sampling,
    m by EM in two sessions (each blocked on what the other estimates). Any Splink backend."""
    from splink import block_on

    linker.training.estimate_probability_two_random_records_match([block_on("nhs", "dob"), block_on("pnc")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(
        max_pairs=conf.u_max_pairs, seed=conf.u_seed, num_chunks=conf.u_num_chunks
    )
    # EM iterates on the counts of each agreement pattern (a table of a few hundred rows) rather
    # than on every blocked pair: each iteration is then one tiny job, not a pass over the pairs.
    # Term frequencies (initials) still weight predictions; only their training ignores them.
    for rule in (block_on("dob", "sex"), block_on("postcode")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule, estimate_without_term_frequencies=True)


def floor_m(model: dict, floor: float) -> dict:
    """The model with every level's m raised to at least `floor`: those below it set to `floor`,
    the others of their comparison scaled down so that its m still sum to 1.

    EM learns m from the pairs it takes for matches: a disagreement that never happens among
    them gets an m near 0. On our extracts sex is never miscoded, so its disagreement level came
    out at m 2e-26, a match weight of -84 that no agreement elsewhere can outweigh: one miscoded
    sex on a real extract would split a person. With the floor at 1e-4 that weight is about
    -12, still strong evidence against, but no longer a veto. A floored model is floored again
    unchanged, so a saved model predicts with the values it was saved with (linkage.model_in)."""
    floored = json.loads(json.dumps(model))
    for comparison in floored["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        if any(not isinstance(lv.get("m_probability"), float | int) for lv in levels):
            continue  # not trained (or a level never observed): nothing to floor yet
        m = [float(lv["m_probability"]) for lv in levels]
        low = {i for i, v in enumerate(m) if v < floor}
        while low:  # the rest scaled down may fall below the floor in turn: floor those too
            rest = [i for i in range(len(m)) if i not in low]
            scale = (1 - floor * len(low)) / sum(m[i] for i in rest)
            if all(m[i] * scale >= floor for i in rest):
                for i, level in enumerate(levels):
                    level["m_probability"] = floor if i in low else m[i] * scale
                break
            low |= {i for i in rest if m[i] * scale < floor}
    return floored


def backend(conf: LinkageConf, master: str, tuples: int) -> str:
    """Where Splink scores: `duckdb` (embedded, in the driver) or `spark`.

    `auto` takes DuckDB when Spark runs locally and the distinct identity tuples are at most
    conf.duckdb_max_tuples (DuckDB linked 866k tuples, scale 4, in 38 s on a 2-core machine:
    benchmarks/results/peers.csv); Spark on a cluster or beyond that. Either backend scores with
    the same settings or saved model, so a model trained on one predicts on the other.
    """
    if conf.backend != "auto":
        return conf.backend
    return "duckdb" if master.startswith("local") and tuples <= conf.duckdb_max_tuples else "spark"


class Earlier(NamedTuple):
    """What an earlier run scored: every pair its blocking rules made among `tuples`, scored with
    the model of digest `model`, and kept in `pairs` where the match probability was at least
    `keep_from`."""

    model: str  # model_digest of the model the pairs were scored with
    keep_from: float
    tuples: DataFrame  # unique_id, content (identity.content: a tuple scored with other values is new)
    pairs: DataFrame  # PAIRS_SCHEMA


class Scored(NamedTuple):
    pairs: DataFrame  # PAIRS_SCHEMA: every pair at or above the match probability asked for
    model: str  # the model, as JSON
    digest: str  # model_digest(the model)
    reused: int | None  # the earlier pairs carried over; None when every pair was scored here


# Pairs whose score depends on the other tuples, not only on the two tuples and the model: those a
# term-frequency level of splink_settings() may score (a forename or a surname agreeing without
# the other; initials agreeing where a side has no forename). Splink weighs those levels by the
# value's frequency among all the tuples it is given, so new tuples move these pairs' weights and
# no other pair's. A superset of them, as SQL on a pair (l, r), in either backend's dialect.
TF_DEPENDENT = (
    "coalesce(l.forename = r.forename, false) <> coalesce(l.surname = r.surname, false)"
    " OR coalesce(l.initials = r.initials AND (l.forename IS NULL OR r.forename IS NULL), false)"
)
NEW = "ld_new"  # a tuple the earlier scores did not see


def model_digest(model: dict) -> str:
    """SHA-256 of a Splink model as saved (its SQL dialect, rules and learnt values), but for the
    linker_uid, which names Splink's cached tables and is new whenever a model changes dialect,
    and of the versions of the libraries that compute its comparisons."""
    scoring = {k: v for k, v in model.items() if k != "linker_uid"}
    scorers = {name: importlib.metadata.version(name) for name in ("splink", "duckdb", "pyspark")}
    return hashlib.sha256(json.dumps([scoring, scorers], sort_keys=True).encode()).hexdigest()


def _levels(settings: dict) -> list[tuple]:
    return [
        (c["output_column_name"], lv.get("label_for_charts"), lv.get("sql_condition"), lv.get("tf_adjustment_column"))
        for c in settings["comparisons"]
        for lv in c["comparison_levels"]
    ]


def reusable(earlier: Earlier | None, model: dict, digest: str, threshold: float) -> bool:
    """Earlier scores stand for this run's where they were made by the same model, kept down to
    this run's lowest match probability or below, and the model's comparisons are this job's
    (splink_settings: TF_DEPENDENT names the pairs its term-frequency levels score)."""
    return (
        earlier is not None
        and earlier.model == digest
        and earlier.keep_from <= threshold
        and _levels(model) == _levels(splink_settings().create_settings_dict(model["sql_dialect"]))
    )


def scoring_new(model: dict) -> dict:
    """The model with each prediction rule narrowed to the pairs earlier scores cannot stand for:
    a tuple new on either side (NEW), or a pair whose weight depends on term frequencies."""
    narrowed = json.loads(json.dumps(model))
    for rule in narrowed["blocking_rules_to_generate_predictions"]:
        rule["blocking_rule"] = f"({rule['blocking_rule']}) AND (l.{NEW} OR r.{NEW} OR {TF_DEPENDENT})"
    return narrowed


def carried_where(threshold: float) -> str:
    """SQL on an earlier pair p and its two tuples l and r (each with NEW): the pairs carried over.
    Both tuples were scored before, the score does not depend on term frequencies, and it is at
    or above `threshold`. Together with scoring_new's pairs, these are the pairs a whole scoring
    of this run's tuples gives."""
    return f"NOT l.{NEW} AND NOT r.{NEW} AND NOT ({TF_DEPENDENT}) AND p.match_weight >= {match_weight(threshold)!r}"


def train_and_predict(
    spark: SparkSession,
    tuples: DataFrame,
    conf: LinkageConf,
    work_dir: fs.Location,
    model_in: fs.Location | None = None,
    on: str = "spark",
    keep_from: float | None = None,
    earlier: Earlier | None = None,
) -> Scored:
    """Splink pairs (id_l, id_r, match_weight) at or above the match probability `keep_from`
    (default the match threshold; lower keeps the pairs other thresholds need), and the model;
    `on` is the backend ("spark" or "duckdb", see backend()). With `earlier` scores of the same
    model (a saved model predicting, linkage.model_in), only the pairs they cannot stand for are
    scored, and the rest carried over: the same pairs and weights as scoring every pair."""
    settings = for_dialect(fs.read_text(model_in), on) if model_in else splink_settings()
    threshold = conf.match_threshold if keep_from is None else keep_from
    if on == "duckdb":
        return _on_duckdb(spark, tuples, settings, conf, model_in is None, threshold, earlier)
    checkpoints = fs.join(work_dir, "checkpoints")
    if model_in is None:
        trainer = _linker(spark, tuples, settings, checkpoints)
        train(trainer, conf)
        settings = trainer.misc.save_model_to_json()
    linker = _linker(spark, tuples, floor_m(settings, conf.m_floor), checkpoints)
    model = linker.misc.save_model_to_json()  # Splink's own whole serialisation, as a saved model
    digest, carried = model_digest(model), None
    if reusable(earlier, model, digest, threshold):
        seen = earlier.tuples.select(UNIQUE_ID, CONTENT, F.lit(False).alias(NEW))
        marked = (
            tuples.withColumn(CONTENT, content())
            .join(seen, on=[UNIQUE_ID, CONTENT], how="left")
            .fillna({NEW: True})
            .drop(CONTENT)
            .persist(StorageLevel.MEMORY_AND_DISK)  # read by Splink and twice by the carried pairs
        )
        linker = _linker(spark, marked, scoring_new(model), checkpoints)
        carried = (
            earlier.pairs.alias("p")
            .join(marked.alias("l"), F.col("p.id_l") == F.col(f"l.{UNIQUE_ID}"))
            .join(marked.alias("r"), F.col("p.id_r") == F.col(f"r.{UNIQUE_ID}"))
            .filter(carried_where(threshold))
            .select("p.id_l", "p.id_r", "p.match_weight")
        )
    predictions = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    pairs = predictions.as_spark_dataframe().select(
        F.col(f"{UNIQUE_ID}_l").alias("id_l"), F.col(f"{UNIQUE_ID}_r").alias("id_r"), "match_weight"
    )
    if carried is None:
        return Scored(pairs, json.dumps(model, indent=2), digest, None)
    # Made here, so that the marked tuples can go (the caller unpersists the pairs); the carried
    # pairs are counted from their own cache, not by joining them again.
    carried = carried.persist(StorageLevel.MEMORY_AND_DISK)
    reused = carried.count()
    pairs = pairs.unionByName(carried).persist(StorageLevel.MEMORY_AND_DISK)
    pairs.count()
    carried.unpersist()
    marked.unpersist()
    return Scored(pairs, json.dumps(model, indent=2), digest, reused)


PAIRS_SCHEMA = "id_l string, id_r string, match_weight double"
# What a comparison level learns in training; everything else about it is the settings' SQL.
TRAINED = ("m_probability", "u_probability", "fix_m_probability", "fix_u_probability")


def for_dialect(model_json: str, dialect: str) -> dict:
    """A saved model, as settings for a linker of `dialect` ("spark" or "duckdb").

    A Splink model holds its comparisons as SQL of the dialect it was trained in (Spark's
    jaro_winkler is a UDF of Splink's jar, DuckDB's is built in), so a model trained on one
    backend is moved to the other by writing this job's comparisons (splink_settings) in the
    new dialect and carrying over what training learnt: the prior and each level's m and u.
    A model whose comparisons are not this job's is refused rather than misread. Either way it
    scores the pairs of this job's blocking rules (blocking.PREDICTION_RULES).
    """
    saved = json.loads(model_json)
    fresh = splink_settings().create_settings_dict(dialect)
    # The pairs to score are this run's choice (the rules the budget was checked on), not the model's.
    saved["blocking_rules_to_generate_predictions"] = fresh["blocking_rules_to_generate_predictions"]
    if saved.get("sql_dialect") == dialect:
        return saved

    def shape(settings: dict) -> list:
        return [
            (c["output_column_name"], [lv.get("label_for_charts") for lv in c["comparison_levels"]])
            for c in settings["comparisons"]
        ]

    if shape(saved) != shape(fresh):
        raise InputError("the saved Splink model's comparisons are not this job's (linkage.model_in): retrain")
    for comparison, learnt in zip(fresh["comparisons"], saved["comparisons"]):
        for level, trained in zip(comparison["comparison_levels"], learnt["comparison_levels"]):
            level.update({k: trained[k] for k in TRAINED if k in trained})
    fresh["probability_two_random_records_match"] = saved["probability_two_random_records_match"]
    return {**fresh, "sql_dialect": dialect}


def match_weight(probability: float) -> float:
    """The match weight of a match probability (Splink's: log2 of the odds)."""
    return math.log2(probability / (1 - probability))


def _on_duckdb(
    spark: SparkSession,
    tuples: DataFrame,
    settings,
    conf: LinkageConf,
    fit: bool,
    threshold: float,
    earlier: Earlier | None = None,
) -> Scored:
    """The same Splink model on an embedded DuckDB: tuples travel Spark -> Arrow -> DuckDB, and
    the pairs back as a Spark DataFrame (held in the driver: pairs number about the tuples)."""
    import duckdb
    from splink import DuckDBAPI, Linker

    con = duckdb.connect()
    try:
        # Each tuple's value hash only where earlier scores may be carried over (it marks the new ones).
        marking = tuples.withColumn(CONTENT, content()) if earlier is not None else tuples
        arrow = marking.toArrow()  # noqa: F841 (read by name in the SQL below)
        con.execute("CREATE TABLE identity_tuples AS SELECT * FROM arrow")
        if fit:
            trainer = Linker(DuckDBAPI(con).register("identity_tuples"), settings, log_level=logging.WARNING)
            train(trainer, conf)
            settings = trainer.misc.save_model_to_json()
        floored = floor_m(settings, conf.m_floor)
        linker = Linker(DuckDBAPI(con).register("identity_tuples"), floored, log_level=logging.WARNING)
        model = linker.misc.save_model_to_json()
        digest, carried = model_digest(model), ""
        if reusable(earlier, model, digest, threshold):
            earlier_tuples, earlier_pairs = earlier.tuples.toArrow(), earlier.pairs.toArrow()  # noqa: F841
            con.execute(
                f"CREATE TABLE marked AS SELECT t.*, e.{UNIQUE_ID} IS NULL AS {NEW} FROM identity_tuples t "
                f"LEFT JOIN earlier_tuples e ON t.{UNIQUE_ID} = e.{UNIQUE_ID} AND t.{CONTENT} = e.{CONTENT}"
            )
            con.execute(
                "CREATE TABLE carried AS SELECT p.id_l, p.id_r, p.match_weight FROM earlier_pairs p "
                f"JOIN marked l ON p.id_l = l.{UNIQUE_ID} JOIN marked r ON p.id_r = r.{UNIQUE_ID} "
                f"WHERE {carried_where(threshold)}"
            )
            linker = Linker(DuckDBAPI(con).register("marked"), scoring_new(model), log_level=logging.WARNING)
            carried = " UNION ALL SELECT id_l, id_r, match_weight FROM carried"
        predictions = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
        pairs = con.sql(
            f"SELECT {UNIQUE_ID}_l AS id_l, {UNIQUE_ID}_r AS id_r, match_weight FROM {predictions.physical_name}"
            + carried
        ).to_arrow_table()
        reused = con.execute("SELECT count(*) FROM carried").fetchone()[0] if carried else None
    finally:
        con.close()
    return Scored(arrow_frame(spark, pairs, PAIRS_SCHEMA), json.dumps(model, indent=2), digest, reused)
