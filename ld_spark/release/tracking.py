"""MLflow tracking: one run per `ld-spark run`. Only aggregates and config ever reach it."""

from __future__ import annotations

import os
import re
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ld_spark import fs
from ld_spark.config import Config, MlflowConf

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


# A parameter is secret when any dot-separated part of its name holds one of these words, or ends
# in "key": fs.s3a.access.key, fs.azure.account.key.<account>.dfs.core.windows.net (the account
# comes after "key", so not only the last part counts), spark.ssl.keyPassword, *.session.token.
# linkage.key_env and linkage.key_file say where the key is, not what it is: "key" starts those
# parts, so they stay readable.
SECRET_WORDS = ("secret", "password", "passwd", "token", "credential")
REDACTED = "***"
# scheme://user:password@host: the password, up to the last "@" (a raw "@" or "/" in a password
# would otherwise end it early and leak the rest).
URI_PASSWORD = re.compile(r"(?P<start>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):\S*@")
# ...?password=...&token=... in a JDBC-style URL.
QUERY_SECRET = re.compile(
    r"(?P<name>[?&;][^=&;\s]*(?:" + "|".join(SECRET_WORDS) + r")[^=&;\s]*=)[^&;\s]*", re.IGNORECASE
)


def is_secret_name(name: str) -> bool:
    parts = name.lower().split(".")
    return any(word in part for part in parts for word in SECRET_WORDS) or any(p.endswith("key") for p in parts)


def redact_uri(value: str) -> str:
    """user:***@host for any URI's password, and *** for a password or token in its query."""
    value = URI_PASSWORD.sub(rf"\g<start>:{REDACTED}@", value)
    return QUERY_SECRET.sub(rf"\g<name>{REDACTED}", value)


def redact(params: dict[str, str]) -> dict[str, str]:
    """Params safe to log: secret-named values replaced by ***, passwords cut out of URIs."""
    return {name: REDACTED if is_secret_name(name) else redact_uri(value) for name, value in params.items()}


def _source_dir() -> Path:
    """The checkout the code runs from (the working directory when it runs from a --py-files zip)."""
    here = Path(__file__).resolve().parent
    return here if here.is_dir() else Path.cwd()


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=_source_dir()
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# The output directory a run writes, as a tag: how a later run finds the runs a kill left RUNNING.
OUT_DIR_TAG = "ld_spark.out_dir"


def end_abandoned_runs(client: Any, experiment_id: str, out_dir: str) -> list[str]:
    """Mark KILLED every run of the experiment still RUNNING on out_dir; returns their ids.

    Call only while holding out_dir's run lock (io.exclusive): no live run can then be writing
    there, so a RUNNING one is a run that was killed before it could end itself.
    """
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
    abandoned = [r.info.run_id for r in running if r.data.tags.get(OUT_DIR_TAG) == out_dir]
    for run_id in abandoned:
        client.set_terminated(run_id, "KILLED")
        print(f"MLflow run {run_id} on {out_dir} was left RUNNING by a run that was killed: marked KILLED")
    return abandoned


def run_params(config: Config) -> dict[str, str]:
    """The config (generator aside) and code version as MLflow params, secrets redacted."""
    params = redact(flatten(config.model_dump(exclude={"generator"})))
    params["git_commit"] = git_commit()
    return params


@contextmanager
def run(config: Config, out_dir: str | Path, run_name: str | None = None) -> Iterator[Any]:
    """An MLflow run for one `ld-spark run` on out_dir; call it under io.exclusive(out_dir)."""
    import mlflow

    where = fs.resolve(out_dir)
    out_dir = str(where.resolve()) if isinstance(where, Path) else where.rstrip("/")
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    experiment = _experiment(config.mlflow)
    end_abandoned_runs(mlflow.tracking.MlflowClient(), experiment.experiment_id, out_dir)
    tags = {
        OUT_DIR_TAG: out_dir,
        "mlflow.source.git.commit": git_commit(),
        "ld_spark.conf_overlays": ",".join(config.overlays) or "(none)",
    }
    with mlflow.start_run(run_name=run_name, tags=tags, log_system_metrics=config.mlflow.system_metrics) as active:
        items = sorted(run_params(config).items())
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(items[start : start + 100]))
        yield active


def _experiment(conf: MlflowConf) -> Any:
    """The run's experiment, made with conf.artifact_location when it does not exist yet."""
    import mlflow

    if conf.artifact_location and mlflow.get_experiment_by_name(conf.experiment) is None:
        try:
            mlflow.create_experiment(conf.experiment, artifact_location=conf.artifact_location)
        except mlflow.exceptions.MlflowException:
            if mlflow.get_experiment_by_name(conf.experiment) is None:
                raise  # not a run started beside this one making it first

    return mlflow.set_experiment(conf.experiment)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a stage of the active run: its seconds are the metric stage_seconds.<name>."""
    import mlflow

    started = time.time()
    yield
    mlflow.log_metric(f"stage_seconds.{name}", time.time() - started)


def log_raw_inputs(files: dict[str, list[fs.Entry]], folders: dict[str, fs.Location]) -> None:
    """The raw extract's tables as the run's input datasets (context "raw extract"): each table's
    folder as its source, a digest of its files' names and sizes (contents stay unread here)."""
    import hashlib

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    for table, entries in files.items():
        listing = "\n".join(f"{e.name}:{e.size}" for e in sorted(entries, key=lambda e: e.name))
        digest = hashlib.sha256(listing.encode()).hexdigest()[:16]
        folder = str(folders[table])
        if fs.is_url(folder) and not folder.startswith(("s3://", "gs://", "hdfs://", "http")):
            # MLflow knows no s3a:// or abfss://: the URL is recorded as it is.
            source = HTTPDatasetSource(url=folder)
        else:
            with warnings.catch_warnings():
                # MLflow registers its local artifact source under two schemes and says so on every
                # local path; either reads the same folder.
                warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple")
                source = resolve_dataset_source(folder)
        mlflow.log_input(MetaDataset(source, name=f"raw/{table}", digest=digest), context="raw extract")


def log_delta_inputs(tables: dict[str, tuple[Path, int]]) -> None:
    """Delta tables an analysis read, as input datasets (context "analysis"): name -> (path,
    version); the version is the digest, so two runs on different data versions differ there."""
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    for name, (path, version) in tables.items():
        source = DeltaDatasetSource(path=str(path), delta_table_version=version)
        mlflow.log_input(MetaDataset(source, name=name, digest=f"v{version}"), context="analysis")


def log_table(rows: list[dict], artifact_file: str) -> None:
    """Released rows as an MLflow table (the run page's artifact viewer shows it as a grid)."""
    import mlflow
    import pandas as pd

    mlflow.log_table(pd.DataFrame(rows), artifact_file=artifact_file)


def log_rows(prefix: str, rows: list[dict], key: str, fields: list[str]) -> None:
    """One metric per row and field, `<prefix><field>.<row's key>` (or `<row's key>.<field>` when
    prefix is empty), for the released rows of a results table; a suppressed (None) cell is not logged."""
    import mlflow

    metrics = {}
    for row in rows:
        for field in fields:
            if row[field] is not None:
                name = f"{prefix}{field}.{row[key]}" if prefix else f"{row[key]}.{field}"
                metrics[name] = float(row[field])
    mlflow.log_metrics(metrics)


def describe(markdown: str) -> None:
    """The active run's description (what the MLflow UI shows at the top of the run page)."""
    import mlflow

    mlflow.set_tag("mlflow.note.content", markdown)
