"""results/ changes only whole: staged files, a manifest, nothing stray or truncated published."""

from __future__ import annotations

import json
import os

import pytest

from ld_spark.release import sdc
from ld_spark.release.publish import MANIFEST, Publisher, sha256, write_csv

SITES = ["site_code", "referrals", "iapt"]


def _publisher(results):
    return Publisher(results, sdc.Rules())


def test_results_are_replaced_whole_with_a_manifest_and_a_stray_file_is_never_published(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "site_onward_referrals.csv").write_text("old\n")
    (results / "placed_by_hand.csv").write_text("nhs_number\n9434765919\n")
    publisher = _publisher(results)
    publisher.table("site_onward_referrals.csv", SITES, [{"site_code": "LD01", "referrals": 41, "iapt": 12}])
    publisher.write_report()
    # Until the commit, results/ is the previous run's, untouched.
    assert (results / "site_onward_referrals.csv").read_text() == "old\n"
    manifest = publisher.commit("run-1", {"analysis/panel": 3})
    assert sorted(p.name for p in results.iterdir()) == [MANIFEST, "sdc_report.csv", "site_onward_referrals.csv"]
    assert json.loads((results / MANIFEST).read_text()) == manifest
    assert manifest["run_id"] == "run-1" and manifest["delta_versions"] == {"analysis/panel": 3}
    assert manifest["files"] == {
        name: sha256(results / name) for name in ("sdc_report.csv", "site_onward_referrals.csv")
    }
    assert (results / "site_onward_referrals.csv").read_text().splitlines() == [
        "site_code,referrals,iapt",
        "LD01,40,10",
    ]
    assert not publisher.staging.exists() and not publisher.previous.exists()


def test_a_run_that_dies_before_its_commit_leaves_the_previous_results_and_the_next_run_cleans_up(tmp_path):
    results = tmp_path / "results"
    first = _publisher(results)
    first.table("site_onward_referrals.csv", SITES, [{"site_code": "LD01", "referrals": 41, "iapt": 12}])
    first.commit("run-1", {})
    dying = _publisher(results)
    dying.table("site_onward_referrals.csv", SITES, [{"site_code": "LD02", "referrals": 90, "iapt": 30}])
    # ...killed here: no commit.
    assert "LD01" in (results / "site_onward_referrals.csv").read_text()
    assert json.loads((results / MANIFEST).read_text())["run_id"] == "run-1"
    # Killed between commit's two renames: results/ moved aside, staging not yet in place.
    results.rename(dying.previous)
    nxt = _publisher(results)
    assert "LD01" in (results / "site_onward_referrals.csv").read_text() and not nxt.previous.exists()
    assert list(nxt.staging.iterdir()) == []


def test_a_write_that_fails_part_way_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "reconciliation.csv"
    write_csv(path, ["source_table", "read"], [{"source_table": "ae", "read": 10}])
    before = path.read_text()

    def killed(descriptor):  # the new bytes are in the temporary file; the rename has not happened
        raise RuntimeError("killed")

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(RuntimeError):
        write_csv(path, ["source_table", "read"], [{"source_table": "ae", "read": 11}])
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["reconciliation.csv"]
