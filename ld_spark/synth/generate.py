"""Write a synthetic national extract in the contract's landing layout, with its planted truth.

Work is split into fixed blocks of person ids; Spark maps over block ids and each block is
generated from its own seed, so the rows are the same however the blocks are partitioned.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ld_spark.config import GeneratorConf
from ld_spark.contract import RECORD_PERSON_COLUMNS, TABLES
from ld_spark.synth import calendar as cal
from ld_spark.synth import recorded, tables_health, tables_justice, tables_ld
from ld_spark.synth.events import expected_counts, planted_rate_ratio
from ld_spark.synth.persons import COHORT, HEALTH_PROCESSES, block_rng, make_persons, n_blocks, site_onward_rates
from ld_spark.synth.tables_health import IAPT_ATTENDED_SHARE

TRUTH_TABLE = "_truth/record_person"
IDENTITY_TABLE = "_truth/person_identity"
SUMMARY_TABLE = "_summary"
RESTRICTED_MEAN_DAYS = 365  # contract section 4: court durations are restricted means to 365 days
WAITING_MONTHS = 6  # contract section 4: the proven-reoffending waiting period
IDENTITY_COLUMNS = [
    "person_id",
    "forename",
    "surname",
    "date_of_birth",
    "sex",
    "nhs_number",
    "pnc_id",
    "pnc_id2",
    "postcode",
    "postcode2",
]
SUMMARY_COLUMNS = ["n_evaluation", "n_historic", "p_no_prior_contact", "expected_sums"]
# Random streams per table family (0 is the persons' own stream, 8 their twins': persons.TWINS_STREAM).
FAMILIES = {"ld": 1, "hes": 2, "mhsds": 3, "iapt": 4, "ndtms": 5, "justice": 6, "sex_miscoded": 7}
# Each identity table's sex column, miscoded on its own random stream (the other draws unchanged).
SEX_COLUMNS = {
    "ld_referrals": "sex",
    "hes_ae": "SEX",
    "mhsds/mhs001_mpi": "Gender",
    "iapt/ids001_mpi": "Gender",
    "ndtms/episodes": "SEX",
    "pnc/offences": "sex",
    "hmcts/cases": "defendant_sex",
}
ALL_TABLES = {
    **TABLES,
    TRUTH_TABLE: RECORD_PERSON_COLUMNS,
    IDENTITY_TABLE: IDENTITY_COLUMNS,
    SUMMARY_TABLE: SUMMARY_COLUMNS,
}
# Every table travels in one DataFrame: its columns by position in c0..cN, tagged by `_table`.
WIDTH = max(len(cols) for cols in ALL_TABLES.values())
UNION_COLUMNS = ["_table"] + [f"c{i}" for i in range(WIDTH)]
UNION_SCHEMA = T.StructType([T.StructField(c, T.StringType()) for c in UNION_COLUMNS])


def person_key_text(person_id: np.ndarray) -> np.ndarray:
    return np.array([f"P{int(i):09d}" for i in person_id], dtype=object)


def _no_prior_contact_probability(persons: pd.DataFrame, cfg: GeneratorConf) -> np.ndarray:
    """P(no health-source event in the 24 months before the evaluation index), per person."""
    index_month = cal.month_of(np.nan_to_num(persons["ld_index_day"].to_numpy()).astype("int64"))
    total = np.zeros(len(persons))
    for process in HEALTH_PROCESSES:
        months, lam, _ = expected_counts(persons, process, cfg)
        rel = months[None, :] - index_month[:, None]
        total += np.where((rel >= -24) & (rel <= -1), lam, 0.0).sum(axis=1)
    return np.exp(-total)


# Contract windows (months relative to the index) behind the planted values below.
PRE, POST, PRIOR = (-12, -1), (0, 11), (-24, -1)
# Processes whose expected counts the conversion and new-referral findings are ratios of.
CONVERSION_PROCESSES = ("iapt_referral", "iapt_contact", "drug_referral", "drug_start")


def _between(rel: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    return (rel >= window[0]) & (rel <= window[1])


def _expected_sums(persons: pd.DataFrame, cfg: GeneratorConf) -> dict[str, float]:
    """Expected events behind the contract 4c ratios, over the people of the outcome analysis
    (cohort members who did not decline): each conversion process by cohort and period, and the
    evaluation cohort's post-index NDTMS referrals weighted by the chance of no NDTMS record
    (referral or treatment start) in the prior window. Summed over blocks in planted_values."""
    members = persons[(persons["role"].to_numpy() == COHORT) & ~persons["declined"].to_numpy(bool)]
    sums: dict[str, float] = {}
    for cohort, column in (("evaluation", "ld_index_day"), ("historic", "hist_index_day")):
        people = members[members[column].notna()].reset_index(drop=True)
        index_month = cal.month_of(people[column].to_numpy().astype("int64"))
        lam = {}
        for process in CONVERSION_PROCESSES:
            months, lam[process], _ = expected_counts(people, process, cfg)
            rel = months[None, :] - index_month[:, None]
            for period, window in (("pre", PRE), ("post", POST)):
                sums[f"{process}.{cohort}.{period}"] = float(np.where(_between(rel, window), lam[process], 0.0).sum())
        if cohort == "evaluation":
            prior = np.where(_between(rel, PRIOR), lam["drug_referral"] + lam["drug_start"], 0.0).sum(axis=1)
            post = np.where(_between(rel, POST), lam["drug_referral"], 0.0).sum(axis=1)
            sums["drug_referral.evaluation.post_new"] = float((post * np.exp(-prior)).sum())
    return sums


def generate_block(
    cfg: GeneratorConf, seed: int, scale: float, block: int, onward_rates: dict[str, np.ndarray]
) -> dict[str, pd.DataFrame]:
    """Every table's rows for one block of people (plus truth and a one-row summary)."""
    persons = make_persons(cfg, seed, scale, block)
    tables: dict[str, pd.DataFrame] = {}
    truths = []
    ld, truth = tables_ld.build(persons, cfg, onward_rates, block_rng(seed, block, FAMILIES["ld"]), block)
    tables["ld_referrals"] = ld
    truths.append(truth)
    for family, builder in (
        ("hes", tables_health.build_hes_ae),
        ("mhsds", tables_health.build_mhsds),
        ("iapt", tables_health.build_iapt),
        ("ndtms", tables_health.build_ndtms),
        ("justice", tables_justice.build_justice),
    ):
        built, truth = builder(persons, cfg, block_rng(seed, block, FAMILIES[family]), block)
        tables.update(built)
        truths.append(truth)
    miscoding = block_rng(seed, block, FAMILIES["sex_miscoded"])
    for table, column in SEX_COLUMNS.items():
        copies = pd.util.hash_pandas_object(tables[table], index=False).to_numpy()
        tables[table][column] = recorded.miscode_sex(
            miscoding, tables[table][column].to_numpy(), cfg.dirt.sex_miscoded, copies
        )
    # One row per record: MPI records recur in monthly submissions but are one record each.
    truth = pd.concat(truths, ignore_index=True).drop_duplicates(["source_table", "record_key"])
    truth["person_id"] = person_key_text(truth["person_id"].to_numpy())
    tables[TRUTH_TABLE] = truth
    tables[IDENTITY_TABLE] = pd.DataFrame(
        {
            "person_id": person_key_text(persons["person_id"].to_numpy()),
            "forename": persons["forename"],
            "surname": persons["surname"],
            "date_of_birth": cal.iso(persons["dob"].to_numpy()),
            "sex": persons["sex"],
            "nhs_number": persons["nhs_number"],
            "pnc_id": persons["pnc_id"],
            "pnc_id2": persons["pnc_id2"],
            "postcode": persons["postcode"],
            "postcode2": persons["postcode2"],
        }
    )
    cohort = persons["role"].to_numpy() == COHORT
    tables[SUMMARY_TABLE] = pd.DataFrame(
        {
            "n_evaluation": [str(int(cohort.sum()))],
            "n_historic": [str(int((cohort & ~np.isnan(persons["hist_index_day"].to_numpy())).sum()))],
            "p_no_prior_contact": [repr(float(_no_prior_contact_probability(persons[cohort], cfg).sum()))],
            "expected_sums": [json.dumps(_expected_sums(persons, cfg), sort_keys=True)],
        }
    )
    return tables


def _to_union(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for name, table in tables.items():
        frame = table[ALL_TABLES[name]].astype(object)
        frame = frame.where(frame.notna(), None)
        frame.columns = [f"c{i}" for i in range(frame.shape[1])]
        frames.append(frame.assign(_table=name))
    union = pd.concat(frames, ignore_index=True)
    return union.reindex(columns=UNION_COLUMNS)


def generate_rows(
    spark: SparkSession, cfg: GeneratorConf, seed: int, scale: float, partitions: int | None = None
) -> DataFrame:
    """All rows of all tables as one DataFrame of strings, tagged with `_table`."""
    blocks = n_blocks(cfg, scale)
    partitions = partitions or max(1, min(blocks, spark.sparkContext.defaultParallelism * 4))
    onward_rates = site_onward_rates(cfg, seed)

    def gen(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for block in batch["id"].tolist():
                yield _to_union(generate_block(cfg, seed, scale, int(block), onward_rates))

    return spark.range(0, blocks, numPartitions=partitions).mapInPandas(gen, UNION_SCHEMA)


def _table(rows: DataFrame, table: str) -> DataFrame:
    return rows.filter(F.col("_table") == table).select(
        *[F.col(f"c{i}").alias(name) for i, name in enumerate(ALL_TABLES[table])]
    )


def _write_single_csv(df: DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".parts")
    df.coalesce(1).write.mode("overwrite").csv(str(tmp), header=True, escape='"')
    part = next(tmp.glob("part-*.csv"))
    shutil.move(str(part), str(path))
    shutil.rmtree(tmp)


def _odds(p: float) -> float:
    return p / (1 - p)


def planted_findings(cfg: GeneratorConf, summary: pd.DataFrame) -> dict[str, float]:
    """The contract 4c findings this generator plants, from the blocks' expected sums.

    Health rates depend on the vulnerability flags, never on offending, and every effect
    multiplies a person's rate alike: so people with and without prior PNC records have the same
    A&E rate ratio, and prior CJS contact predicts no health contact once the flags are known.
    Conversions (attendances per referral) and the share of new NDTMS referrals are ratios of
    expected counts (the estimators' ratio-of-sums targets)."""
    sums: dict[str, float] = {}
    for text in summary["expected_sums"]:
        for key, value in json.loads(text).items():
            sums[key] = sums.get(key, 0.0) + value

    def conversion(attended: str, referral: str, share: float) -> float:
        def conv(cohort: str, period: str) -> float:
            return share * sums[f"{attended}.{cohort}.{period}"] / sums[f"{referral}.{cohort}.{period}"]

        return (conv("evaluation", "post") - conv("evaluation", "pre")) - (
            conv("historic", "post") - conv("historic", "pre")
        )

    return {
        "ae_prior_cjs_rr": 1.0,
        "cjs_predicts_health_rr": 1.0,
        "drug_referral_new_pct": 100
        * sums["drug_referral.evaluation.post_new"]
        / sums["drug_referral.evaluation.post"],
        "iapt_conversion_diff": conversion("iapt_contact", "iapt_referral", IAPT_ATTENDED_SHARE),
        "drug_conversion_diff": conversion("drug_start", "drug_referral", 1.0),
        # TOP scores fall linearly over months -12..-1 (synth.events.top_decline_months).
        "self_reported_health_slope": -cfg.top_decline_per_month,
    }


def planted_values(cfg: GeneratorConf, summary: pd.DataFrame) -> dict[str, float]:
    """The true values of the contract's estimands that this generator plants."""
    n_eval = int(summary["n_evaluation"].astype(int).sum())
    v = cfg.vulnerability
    crown_share = tables_justice.crown_share()
    mean_extra = (
        crown_share * cfg.hearings_mean_extra["crown"] + (1 - crown_share) * cfg.hearings_mean_extra["magistrates"]
    )
    return {
        "n_evaluation": n_eval,
        "n_historic": int(summary["n_historic"].astype(int).sum()),
        "pct_any_vulnerability": 100 * v["any"],
        "pct_mental_health": 100 * v["mental_health"],
        "pct_substance_misuse": 100 * v["substance_misuse"],
        "pct_multiple_mh_needs": 100 * v["multiple_mh_needs"],
        "pct_no_prior_contact": 100 * float(summary["p_no_prior_contact"].astype(float).sum()) / max(n_eval, 1),
        "ae_attendance_rr": planted_rate_ratio("ae", cfg),
        "mh_referral_rr": planted_rate_ratio("mh_referral", cfg),
        "mh_contact_rr": planted_rate_ratio("mh_contact", cfg),
        "mha_detention_rr": planted_rate_ratio("mha_detention", cfg),
        "iapt_referral_rr": planted_rate_ratio("iapt_referral", cfg),
        "iapt_attendance_rr": planted_rate_ratio("iapt_contact", cfg),
        "drug_referral_rr": planted_rate_ratio("drug_referral", cfg),
        "drug_attendance_rr": planted_rate_ratio("drug_start", cfg),
        # Under the proven-reoffending rules (contract section 4), by simulation.
        **tables_justice.planted_justice(cfg, WAITING_MONTHS),
        "sentence_length_ratio": cfg.sentence_length_ratio,
        # Restricted means to 365 days (contract section 4), by simulation of the court process.
        **(court := tables_justice.planted_restricted_means(cfg, RESTRICTED_MEAN_DAYS)),
        # Every post-index case is shifted alike, so the cases of months 0..1 are too.
        "court_duration_at_referral_days_diff": court["court_duration_days_diff"],
        # Hearings per case = 2 + Poisson(extra): first, middle ones, final; adjourned = non-final.
        # Decline depends on the substance-misuse flag alone, so the adjusted odds ratio is this one.
        "declined_substance_or": _odds(cfg.decline_rate_substance) / _odds(cfg.decline_rate),
        "hearings_per_case_rr": (2 + cfg.hearings_rr * mean_extra) / (2 + mean_extra),
        "adjournments_rr": (1 + cfg.hearings_rr * mean_extra) / (1 + mean_extra),
        **planted_findings(cfg, summary),
    }


def generate(
    spark: SparkSession, cfg: GeneratorConf, seed: int, scale: float, out: str | Path, partitions: int | None = None
) -> dict[str, int]:
    """Write every contract table under `out` as CSV, plus `_truth/`. Returns rows per table."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    rows = generate_rows(spark, cfg, seed, scale, partitions).persist(StorageLevel.DISK_ONLY)
    counts = {r["_table"]: r["count"] for r in rows.groupBy("_table").count().collect()}
    for table in TABLES:
        (_table(rows, table).write.mode("overwrite").csv(str(out / table), header=True, escape='"'))
    (out / "_truth").mkdir(parents=True, exist_ok=True)
    for table in (TRUTH_TABLE, IDENTITY_TABLE):
        _write_single_csv(_table(rows, table), out / f"{table}.csv")
    summary = _table(rows, SUMMARY_TABLE).toPandas()
    rows.unpersist()
    (out / "_truth" / "planted.json").write_text(json.dumps(planted_values(cfg, summary), indent=2) + "\n")
    (out / "_truth" / "generator.json").write_text(
        json.dumps({"seed": seed, "scale": scale, "blocks": n_blocks(cfg, scale), "config": cfg.model_dump()}, indent=2)
        + "\n"
    )
    return {t: int(counts.get(t, 0)) for t in TABLES}
