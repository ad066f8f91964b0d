"""One Spark session for the whole test run, and one small synthetic extract shared by tests."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from ld_spark import config as config_module  # noqa: E402
from ld_spark import session as session_module  # noqa: E402


@pytest.fixture(scope="session")
def config() -> config_module.Config:
    return config_module.load("test")


@pytest.fixture(scope="session")
def spark(config):
    spark = session_module.build(config)
    yield spark
    spark.stop()


def _generated(spark, config, tmp_path_factory, name: str, scale: float, seed: int):
    """A synthetic extract written once for the session: (raw root, rows per table)."""
    from ld_spark.synth.generate import generate

    out = tmp_path_factory.mktemp(name) / "extract"
    return out, generate(spark, config.generator, seed=seed, scale=scale, out=out)


@pytest.fixture(scope="session")
def extract(spark, config, tmp_path_factory):
    """The calibration extract: big enough that shares and planted effects show through the
    noise (about 1,700 evaluation-cohort people), small enough to generate in about a minute."""
    return _generated(spark, config, tmp_path_factory, "raw", scale=0.2, seed=7)


@pytest.fixture(scope="session")
def small_extract(spark, config, tmp_path_factory):
    """The pipeline's end-to-end extract: every stage, linkage included, in a few minutes here."""
    return _generated(spark, config, tmp_path_factory, "raw_small", scale=0.05, seed=11)
