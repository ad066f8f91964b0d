import pytest
from pydantic import ValidationError

from ld_spark import config as config_module


def test_overlay_replaces_only_the_keys_it_names():
    base = config_module.load()
    test = config_module.load("test")
    assert base.spark.master == "local[*]"
    assert test.spark.master == "local[2]"
    assert test.spark.delta_package == base.spark.delta_package
    assert test.generator == base.generator


def test_deep_merge_merges_nested_mappings_and_replaces_leaves():
    merged = config_module.deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"c": 3}, "d": [2]})
    assert merged == {"a": {"b": 1, "c": 3}, "d": [2]}


def test_master_from_environment_wins(monkeypatch):
    monkeypatch.setenv("LD_SPARK_MASTER", "spark://127.0.0.1:7077")
    assert config_module.load("local").spark.master == "spark://127.0.0.1:7077"


def test_unknown_key_is_rejected(tmp_path):
    overlay = tmp_path / "typo.yaml"
    overlay.write_text("spark:\n  shuffle_partitons: 3\n")
    with pytest.raises(ValidationError):
        config_module.load(overlay)


def test_missing_overlay_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="nosuch.yaml"):
        config_module.load("nosuch")


def test_delta_rebuilds_a_tables_state_with_the_tasks_from_conf_not_the_shuffles(spark, config):
    assert config.spark.delta_snapshot_partitions == 2  # base.yaml's; test.yaml shuffles into 4
    assert spark.conf.get("spark.databricks.delta.snapshotPartitions") == "2"
