"""Typed configuration: conf/base.yaml plus overlays, loaded once into a Config object."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ld_spark.contract import HEALTH_SOURCES


def conf_dir() -> Path:
    """LD_SPARK_CONF_DIR, else conf/ beside the package, else ./conf (the package may be running
    from a --py-files zip, with the job's conf/ in the working directory)."""
    if os.environ.get("LD_SPARK_CONF_DIR"):
        return Path(os.environ["LD_SPARK_CONF_DIR"])
    beside = Path(__file__).resolve().parent.parent / "conf"
    return beside if beside.is_dir() else Path.cwd() / "conf"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A JVM memory size with its unit: 3g, 2560m, ... (a bare number is bytes to -Xmx but MiB to
# Spark's spark.driver.memory, so none is taken).
SIZE = r"[1-9][0-9]*[kKmMgGtT]"
JVM_SIZE = f"^{SIZE}$"
_UNITS = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def jvm_bytes(size: str) -> int:
    """A JVM memory size with its unit (3g, 2560m) in bytes."""
    return int(size[:-1]) * _UNITS[size[-1].lower()]


class HeapConf(_Strict):
    """`spark.driver_memory: auto`: a local run's heap sized to its extract (ld_spark/session.py):
    `base` + `per_raw_byte` x the bytes of its tables' files, at most `max`. A parquet file's bytes
    count `parquet_as_csv` times (it holds that many more rows per byte than CSV). `unknown`: when
    the size cannot be read before the JVM starts (an object store, or no extract: generate, forget)."""

    base: str = Field(pattern=JVM_SIZE)
    per_raw_byte: float = Field(ge=0)
    parquet_as_csv: float = Field(ge=1)
    max: str = Field(pattern=JVM_SIZE)
    unknown: str = Field(pattern=JVM_SIZE)

    @model_validator(mode="after")
    def _within_max(self) -> HeapConf:
        for name in ("base", "unknown"):
            if jvm_bytes(getattr(self, name)) > jvm_bytes(self.max):
                raise ValueError(f"spark.heap: {name} {getattr(self, name)} is above max {self.max}")
        return self


class SparkConf(_Strict):
    master: str
    app_name: str
    # The JVM's heap in a local run (-Xmx): a size, or `auto` (sized to the extract by `heap`).
    driver_memory: str = Field(pattern=f"^({SIZE}|auto)$")
    heap: HeapConf
    shuffle_partitions: int
    # Tasks Delta rebuilds a table's state from its log with, on every read and write (Delta's
    # default: 50). Our tables' logs are a few commits whatever the rows (ld_spark/session.py).
    delta_snapshot_partitions: int = Field(2, ge=1)
    delta_package: str
    jars_dir: str
    ivy_dir: str
    console_progress: bool
    concurrent_tables: int = 1
    # glibc malloc arenas per process: the Python driver's on any master, and (MALLOC_ARENA_MAX)
    # the JVM's and its Python workers' in a local run (ld_spark/memory.py); null: glibc's 8 per core.
    malloc_arena_max: int | None = Field(None, ge=1)
    # The driver JVM's -XX:GCTimeRatio (the share of time it may spend collecting before it grows
    # the heap: 1 / (1 + ratio)); null: the collector's default (G1's 12, Parallel's 99).
    gc_time_ratio: int | None = Field(None, ge=1)
    # The garbage collector of a driver JVM that ld-spark starts (not spark-submit's); null: the
    # JVM's own choice (G1 with 2 cores or more and 1792 MiB or more) (ld_spark/session.py).
    gc: Literal["parallel", "g1", "serial"] | None = None
    extra: dict[str, str] = {}
    # s3a:// support (Hadoop's S3A filesystem and the AWS SDK it needs), fetched by `make setup`
    # into its own folder and put on the driver's class path when present (ld_spark/session.py).
    object_store_package: str = "org.apache.hadoop:hadoop-aws:3.4.1"
    object_store_jars_dir: str = ".cache/jars-s3a"


class PathsConf(_Strict):
    raw: str
    out: str
    # On an object store the run lock is a lease (ld_spark/lock.py): renewed every third of this,
    # and taken over by the next run this long after a killed run's last renewal.
    lock_lease_seconds: float = 120.0
    # A rerun on the raw files, settings and code of the last finished run in OUT_DIR, whose
    # tables are as it left them, stops after hashing the files (ld_spark/refresh.py).
    skip_unchanged: bool = True
    # A rerun on a raw folder that has only grown lands the new files alone, and MERGEs into
    # bronze only the keys their rows hold (ld_spark/refresh.py); false: every run lands everything.
    incremental: bool = True


class MlflowConf(_Strict):
    tracking_uri: str
    experiment: str
    # CPU, memory, disk and network sampled during the run (MLflow's system metrics, psutil).
    system_metrics: bool = True
    # Where a new experiment keeps its artifacts (e.g. s3://bucket/mlflow); None: MLflow's default
    # (./mlruns beside a local store). An existing experiment keeps the location it was made with.
    artifact_location: str | None = None


class AnalysisConf(_Strict):
    evaluation_window: tuple[str, str]
    historic_charge_window: tuple[str, str]
    min_follow_up_months: int
    series_months: tuple[int, int]
    pre_months: tuple[int, int]
    post_months: tuple[int, int]
    prior_contact_months: tuple[int, int]
    event_study_reference: tuple[int, int]
    event_study_months: tuple[int, int]
    follow_up_end: str | None = None
    # The first day a health source covers, by source name, where the extract does not show it (blank:
    # the first month its records fill, ld_spark/cohorts.py source_starts).
    source_starts: dict[Literal[HEALTH_SOURCES], dt.date] = {}
    declined_in_outcomes: bool
    waiting_months: int
    index_offence_tolerance_days: int
    restricted_mean_days: int
    justice_spec: Literal["proven_reoffending", "plain"]

    def window(self) -> tuple[dt.date, dt.date]:
        """The evaluation window (referral dates), as dates."""
        return tuple(dt.date.fromisoformat(d) for d in self.evaluation_window)

    def historic_window(self) -> tuple[dt.date, dt.date]:
        """The historic control's charge window, as dates."""
        return tuple(dt.date.fromisoformat(d) for d in self.historic_charge_window)


class EconomicsConf(_Strict):
    cost_per_prisoner_year_gbp: float
    share_of_sentence_served: float
    output_per_day_gbp: float
    programme_cost_per_referral_gbp: float
    referrals_not_declined_per_year: int
    bootstrap_replicates: int = 200  # 0: intervals from custody_or's interval only
    bootstrap_seed: int = 2017


class DisclosureConf(_Strict):
    threshold: int = 7  # counts 1..threshold are suppressed (a TRE may ask for 10)
    round_to: int = 5
    min_people_model: int = 10
    min_residual_df: int = 10
    one_decimal_from: int = 4000  # percentages get one decimal only on a denominator this large
    nk_share: float = 0.9  # dominance: two largest values at most this share of a total
    p_ratio: float = 0.1  # p-ratio: the rest at least this share of the largest value


class SourceConf(_Strict):
    pop_users: float
    ld_users: float
    ld_users_vulnerable: float


class ProcessConf(_Strict):
    pop_rate: float
    ld_rate: float
    ramp: float
    effect: float
    effect_months: int


class OnwardConf(_Strict):
    rate: float
    concentration: float


class DirtConf(_Strict):
    duplicate_row: float
    name_typo: float
    name_swap: float
    name_variant: float
    nickname: float
    dob_day_month_swap: float
    dob_digit_slip: float
    dob_placeholder: float
    nhs_missing: dict[str, float]
    nhs_mistyped: float
    nhs_shared_persons: float
    pnc_missing: dict[str, float]
    postcode_lower: float
    postcode_nospace: float
    postcode_nfa: float
    postcode_zz99: float
    sex_miscoded: float = 0.0
    client_missing: float = 0.0  # NDTMS episodes without the agency's CLIENTID
    bad_date: float
    bad_code: float
    moved_share: float


class GeneratorConf(_Strict):
    shape: str  # plain | realistic (conf/shape_realistic.yaml): recorded with the extract
    block_size: int
    population_per_scale: int
    extract_start: str
    extract_end: str
    evaluation_window: tuple[str, str]  # the analysis's windows (conf/base.yaml anchors)
    historic_charge_window: tuple[str, str]
    sites: int
    cohort_per_scale: int
    non_consent_share: float
    repeat_referral_share: float
    outside_window_per_scale: int
    historic_share: float
    youth_share: float
    male_share_referred: float
    vulnerability: dict[str, float]
    health_naive_share: float
    decline_rate: float
    decline_rate_substance: float
    onward: dict[str, OnwardConf]
    frailty_shape: float
    sources: dict[str, SourceConf]
    processes: dict[str, ProcessConf]
    offence_pre_spike: float
    top_decline_per_month: float
    charge_rate: float
    conviction_rate: float
    custody_rate: float
    custody_or: float
    custody_crown_log_odds: float  # Crown Court disposals: more often custodial (any cohort)
    sentence_median_days: float
    sentence_sigma: float
    sentence_length_ratio: float
    charge_lag_days_max: int
    first_hearing_lag_mean: float
    court_duration_min_days: float
    court_duration_mean_days: dict[str, float]
    court_duration_diff_days: float
    historic_index_offence_lead_days_max: int  # historic index offence up to this many days before its arrest
    custody_removes_offending: bool  # no offence is committed while serving a custodial sentence
    custody_share_served: float
    hearings_mean_extra: dict[str, float]
    hearings_rr: float
    adjourn_rate: float
    two_pnc_ids_share: float
    twins_share: float = 0.0  # people who are the same-sex twin, at one address, of another
    # Real court records (tables_justice): Crown cases sent on by a magistrates' court (two records),
    # magistrates' cases without the charge date, and charge dates days from the police's.
    committal_share: float = Field(0.0, ge=0, le=1)
    summons_share: float = Field(0.0, ge=0, le=1)
    court_charge_slip_share: float = Field(0.0, ge=0, le=1)
    court_charge_slip_days_max: int = Field(3, ge=1)
    # Detentions that run on in a record of their own (a s136 then a s2, a s2 renewed as a s3).
    detention_chain_share: float = Field(0.0, ge=0, le=1)
    dirt: DirtConf


class LinkageConf(_Strict):
    match_threshold: float
    backend: Literal["auto", "duckdb", "spark"] = "auto"
    duckdb_max_tuples: int = 1_000_000
    max_comparisons_per_rule: int = 1_000_000_000
    m_floor: float = Field(1e-4, ge=0, lt=0.1)  # no level's m below this: no single disagreement vetoes a match
    u_max_pairs: int
    u_seed: int
    u_num_chunks: int
    model_in: str | None = None
    reuse_scores: bool = True  # carry over the last run's scores where its model predicts again
    key_env: str
    key_file: str
    create_key_if_missing: bool


class SensitivityConf(_Strict):
    enabled: bool = True
    # The linkage re-decided at these match probabilities (contract: 0.80 and 0.99; main is
    # linkage.match_threshold); an empty list leaves the linkage analyses out.
    match_thresholds: tuple[float, ...] = (0.80, 0.99)
    # Analyses estimated side by side (threads on the driver: Spark jobs and statsmodels fits overlap).
    workers: int = 2


class CheckConf(_Strict):
    # `ld-spark check` calls a folder unusable when a table would quarantine more than this share.
    max_quarantined_share: float = 0.5


class Config(_Strict):
    spark: SparkConf
    paths: PathsConf
    mlflow: MlflowConf
    analysis: AnalysisConf
    economics: EconomicsConf
    disclosure: DisclosureConf
    linkage: LinkageConf
    generator: GeneratorConf
    sensitivity: SensitivityConf = SensitivityConf()
    check: CheckConf = CheckConf()
    # The overlays merged over base.yaml, in order (set by load(); a tag of the MLflow run).
    overlays: tuple[str, ...] = ()


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Overlay wins key by key; nested mappings are merged, everything else replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    return yaml.safe_load(path.read_text()) or {}


def load(*overlays: str | Path) -> Config:
    """Load conf/base.yaml and merge each overlay in order.

    An overlay is a path, or a bare name such as "local" meaning conf/local.yaml.
    LD_SPARK_MASTER, if set, overrides spark.master (for clusters) and
    MLFLOW_TRACKING_URI overrides mlflow.tracking_uri.
    """
    data = _read_yaml(conf_dir() / "base.yaml")
    for overlay in overlays:
        path = Path(overlay)
        if not path.suffix:
            path = conf_dir() / f"{overlay}.yaml"
        data = deep_merge(data, _read_yaml(path))
    if os.environ.get("LD_SPARK_MASTER"):
        data = deep_merge(data, {"spark": {"master": os.environ["LD_SPARK_MASTER"]}})
    if os.environ.get("MLFLOW_TRACKING_URI"):
        data = deep_merge(data, {"mlflow": {"tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}})
    return Config.model_validate({**data, "overlays": [str(o) for o in overlays]})
