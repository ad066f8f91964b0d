"""The catalog's view of OUT_DIR: what it finds there, on a hand-made folder."""

from __future__ import annotations

from ld_spark import catalog


def test_stale_variants_are_an_earlier_versions_threshold_tables_and_nothing_a_run_keeps(tmp_path):
    """A version before 2026-12-05 wrote each threshold's cohorts onward beside its linkage and
    inside analysis/sensitivity; only the linkage's own record -> person tables are kept now."""
    linkage = tmp_path / "linkage" / "sensitivity" / "match_threshold_0.80"
    for table in ("record_person", "record_person_identity", "referrals", "cohort_index"):
        (linkage / table / "_delta_log").mkdir(parents=True)
    table = tmp_path / "analysis" / "sensitivity"
    (table / "_delta_log").mkdir(parents=True)
    (table / "part-00000.snappy.parquet").write_bytes(b"rows")
    (table / "match_threshold_0.80" / "panel" / "_delta_log").mkdir(parents=True)

    stale = sorted(str(p.relative_to(tmp_path)) for p in catalog.stale_variants(tmp_path))

    assert stale == [
        "analysis/sensitivity/match_threshold_0.80",
        "linkage/sensitivity/match_threshold_0.80/cohort_index",
        "linkage/sensitivity/match_threshold_0.80/referrals",
    ]
    assert catalog.stale_variants(tmp_path / "nothing_here") == []
