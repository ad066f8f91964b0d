"""Site onward-referral counts and declining by vulnerability, on hand-built frames."""

from __future__ import annotations

import pytest

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


def test_site_heterogeneity_is_the_pearson_chi_square_of_the_sites_table():
    """10 of 100 against 30 of 100: expected 20/80 in each row, chi-square 5 + 1.25 + 5 + 1.25 = 12.5
    on 1 df (p = 0.00041); equal rates give 0 and p = 1; a site with no referrals is left out."""
    from ld_spark.uptake import site_heterogeneity

    sites = [
        {"site_code": "A", "referrals": 100, "iapt": 10},
        {"site_code": "B", "referrals": 100, "iapt": 30},
        {"site_code": "C", "referrals": 0, "iapt": 0},
    ]
    got = site_heterogeneity("site_heterogeneity_iapt_p", sites, "iapt")
    assert got.estimate == pytest.approx(12.5) and got.p_value == pytest.approx(0.000407, abs=1e-6)
    assert got.n == 200 and "2 sites, 1 df" in got.method
    same = site_heterogeneity("x", [{"referrals": 50, "iapt": 5}, {"referrals": 100, "iapt": 10}], "iapt")
    assert same.estimate == pytest.approx(0.0) and same.p_value == pytest.approx(1.0)


def test_declined_odds_ratio_is_adjusted_and_exact_on_a_saturated_table():
    """Substance misuse: 30 of 100 declined, without: 10 of 100, so OR = (30/70) / (10/90) = 3.857;
    mental health split evenly in every cell changes nothing; a flag that never varies is left out."""
    import pandas as pd

    from ld_spark.contract import VULNERABILITIES
    from ld_spark.uptake import declined_odds_ratio

    rows = []
    for substance, declined, count in ((1, 1, 30), (1, 0, 70), (0, 1, 10), (0, 0, 90)):
        rows += [{"declined": declined, "substance_misuse": substance, "mental_health": i % 2} for i in range(count)]
    flags = pd.DataFrame(rows)
    for v in VULNERABILITIES:
        flags[v] = flags.get(v, 0)
    got = declined_odds_ratio("declined_substance_or", flags, "substance_misuse")
    assert got.estimate == pytest.approx((30 / 70) / (10 / 90), rel=1e-6)
    assert got.ci_low < got.estimate < got.ci_high and got.n == 200
    assert got.smallest_cell == 10  # the 2 x 2 it rests on: 10 declined without substance misuse
