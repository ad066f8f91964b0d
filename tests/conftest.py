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


# The calibration scale: big enough that shares and planted effects show through the noise
# (about 1,700 evaluation-cohort people), small enough to generate in about a minute here.
CALIBRATION_SCALE = 0.2
CALIBRATION_SEED = 7


@pytest.fixture(scope="session")
def extract(spark, config, tmp_path_factory):
    """A synthetic extract written once for the session, with its row counts."""
    from ld_spark.synth.generate import generate

    out = tmp_path_factory.mktemp("raw") / "extract"
    counts = generate(spark, config.generator, seed=CALIBRATION_SEED, scale=CALIBRATION_SCALE, out=out)
    return out, counts


# The pipeline's end-to-end scale: every stage, linkage included, in a few minutes here.
PIPELINE_SCALE = 0.05
PIPELINE_SEED = 11


@pytest.fixture(scope="session")
def small_extract(spark, config, tmp_path_factory):
    from ld_spark.synth.generate import generate

    out = tmp_path_factory.mktemp("raw_small") / "extract"
    counts = generate(spark, config.generator, seed=PIPELINE_SEED, scale=PIPELINE_SCALE, out=out)
    return out, counts
