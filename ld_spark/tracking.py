"""MLflow tracking: one run per `ld-spark run`. Only aggregates and config ever reach it."""
from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ld_spark.config import Config

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


def _source_dir() -> Path:
    """The checkout the code runs from (the working directory when it runs from a --py-files zip)."""
    here = Path(__file__).resolve().parent
    return here if here.is_dir() else Path.cwd()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=_source_dir()).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def run(config: Config, run_name: str | None = None) -> Iterator[Any]:
    import mlflow

    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    mlflow.set_experiment(config.mlflow.experiment)
    with mlflow.start_run(run_name=run_name) as active:
        params = flatten(config.model_dump(exclude={"generator"}))
        params["git_commit"] = git_commit()
        items = sorted(params.items())
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(items[start:start + 100]))
        yield active
