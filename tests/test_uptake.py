"""Site onward-referral counts and declining by vulnerability, on hand-built frames."""

from __future__ import annotations

from ld_spark.contract import VULNERABILITIES
from ld_spark.uptake import declined_by_vulnerability, funnel_limits, site_onward_counts

VULNS = ", ".join(f"vuln_{v} boolean" for v in VULNERABILITIES)


def _referred(spark, rows):
    """rows: (site, declined, onward, mental_health, substance_misuse); other vulnerabilities False."""
    full = [(s, d, o, mh, sm, *[False] * (len(VULNERABILITIES) - 2)) for s, d, o, mh, sm in rows]
    return spark.createDataFrame(full, f"site_code string, declined boolean, onward_referrals string, {VULNS}")


def test_site_counts_leave_out_declined_people_and_read_every_onward_service(spark):
    referred = _referred(
        spark,
        [
            ("LD01", False, "iapt;gp", True, False),
            ("LD01", False, None, False, True),
            ("LD01", True, "advice", True, True),
            ("LD02", False, "iapt", True, False),
            ("LD02", None, "iapt_other;iapt", False, False),
        ],
    )
    got = {r.site_code: r for r in site_onward_counts(referred).collect()}
    assert (got["LD01"].referrals, got["LD01"].iapt, got["LD01"].gp, got["LD01"].advice) == (2, 1, 1, 0)
    assert (got["LD02"].referrals, got["LD02"].iapt) == (2, 2)


def test_declining_is_counted_with_and_without_each_vulnerability(spark):
    referred = _referred(
        spark,
        [
            ("LD01", True, None, False, True),
            ("LD01", True, None, True, True),
            ("LD01", False, None, True, True),
            ("LD01", False, None, True, False),
        ],
    )
    got = {r.vulnerability: r for r in declined_by_vulnerability(referred).collect()}
    s = got["substance_misuse"]
    assert (s.people, s.declined, s.people_without, s.declined_without) == (3, 2, 1, 0)
    m = got["mental_health"]
    assert (m.people, m.declined, m.people_without, m.declined_without) == (3, 1, 1, 1)


def test_funnel_limits_narrow_as_sites_grow():
    small, large = funnel_limits(0.2, 25, 1.96), funnel_limits(0.2, 400, 1.96)
    assert small[0] < large[0] < 0.2 < large[1] < small[1]
    assert funnel_limits(0.02, 5, 3.09)[0] == 0.0
