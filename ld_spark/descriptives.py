"""Who the cohorts are: sizes, vulnerability profile and prior service contact (contract section 4).

Spark reduces each measure to a count and a denominator; the driver adds Wilson 95% intervals.
Rows come out in the results-table layout (estimand, estimate, ci_low, ci_high, p_value, n, method).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.cohorts import EVALUATION, HISTORIC
from ld_spark.contract import VULNERABILITIES
from ld_spark.effects import justice_rows
from ld_spark.events import HEALTH_CONTACT

WILSON = "proportion of people, Wilson 95% interval"


def cohort_sizes(cohorts: DataFrame) -> dict[str, dict]:
    """Cohort index -> by cohort: cohort, people, not_followed (people whose justice follow-up is
    not followed) and first_index (its first index date). One small aggregate."""
    rows = (
        cohorts.groupBy("cohort")
        .agg(
            F.count("*").alias("people"),
            F.count(F.when(~F.col("justice_followed"), 1)).alias("not_followed"),
            F.min("index_date").alias("first_index"),
        )
        .collect()
    )
    return {r["cohort"]: r.asDict() for r in rows}


def size_rows(sizes: dict[str, dict]) -> list[dict]:
    """n_<cohort>: the cohort's people; n_justice_not_followed_<cohort>: those whose post period
    plus waiting period runs past the extract's end, left out of the justice outcomes (contract
    section 4). sizes: cohort_sizes."""
    people = {c: sizes.get(c, {}).get("people", 0) for c in (EVALUATION, HISTORIC)}
    not_followed = {c: sizes.get(c, {}).get("not_followed", 0) for c in (EVALUATION, HISTORIC)}
    return [
        *[_row(f"n_{c}", n, None, None, n, "count of people") for c, n in people.items()],
        *[
            _row(
                f"n_justice_not_followed_{c}",
                n,
                None,
                None,
                n,
                "count of people whose follow-up + waiting period passes the extract's end",
            )
            for c, n in not_followed.items()
        ],
    ]


def referral_flow(referrals: DataFrame, window: tuple[dt.date, dt.date], n_evaluation: int) -> list[dict]:
    """How the people referred in the window become the evaluation cohort, a count for each step
    that leaves people out (contract section 3; n_evaluation is who is left):
    n_referred_in_window; n_not_consenting (no referral of theirs there consented);
    n_consenting_without_index_date (consented, but with no index offence date to index them);
    n_follow_up_short (their index + min_follow_up_months passes the extract's end).

    referrals: the linkage layer's referral table (person_key, referral_date, consent,
    index_offence_date); n_evaluation: the evaluation cohort's size (ld_spark.cohorts.evaluation_cohort,
    which keeps those whose index + min_follow_up_months is by the extract's end).
    """
    consented = F.coalesce(F.col("consent"), F.lit(False))
    people = (
        referrals.filter(F.col("referral_date").between(F.lit(window[0]), F.lit(window[1])))
        .groupBy("person_key")
        .agg(
            F.max(consented.cast("int")).alias("consenting"),
            F.max((consented & F.col("index_offence_date").isNotNull()).cast("int")).alias("dated"),
        )
    )
    row = people.agg(F.count("*").alias("referred"), F.sum("consenting"), F.sum("dated")).first()
    referred, consenting, dated = (int(v or 0) for v in row)
    counts = {
        "n_referred_in_window": (referred, "count of people referred in the evaluation window"),
        "n_not_consenting": (
            referred - consenting,
            "count of people referred in the window without a consenting referral there",
        ),
        "n_consenting_without_index_date": (
            consenting - dated,
            "count of people whose consenting referrals in the window have no index offence date (left out of the cohorts)",
        ),
        "n_follow_up_short": (
            dated - n_evaluation,
            "count of people whose index + minimum follow-up passes the extract's end (left out of the cohorts)",
        ),
    }
    return [_row(name, n, None, None, n, method) for name, (n, method) in counts.items()]


def untimed_cases(cases: DataFrame, spec: str = "proven_reoffending") -> list[dict]:
    """Court cases of the justice outcomes that a duration cannot time, counted rather than lost:
    n_cases_untimed_court (no first hearing in the case or its hearings, or completed before it:
    out of court_duration_days_diff) and n_cases_untimed_sentence (sentenced or still open, but no
    arrest found for the case, or sentenced before it: out of arrest_to_sentence_days_diff).

    cases: the analysis layer's court_cases table (ld_spark.justice.cohort_cases); spec:
    analysis.justice_spec."""
    needs_sentence_time = F.col("sentence_observed") | ~F.col("completed")
    row = (
        # The restricted means' population: the cases the justice estimands use.
        cases.transform(justice_rows(spec))
        .agg(
            F.sum(F.col("duration_days").isNull().cast("int")).alias("court"),
            F.sum((needs_sentence_time & F.col("arrest_to_sentence_days").isNull()).cast("int")).alias("sentence"),
        )
        .first()
    )
    court, sentence = int(row["court"] or 0), int(row["sentence"] or 0)
    return [
        _row(
            "n_cases_untimed_court",
            court,
            None,
            None,
            court,
            "count of cases in the justice periods with no first hearing, or completed before it (not in court_duration_days_diff)",
        ),
        _row(
            "n_cases_untimed_sentence",
            sentence,
            None,
            None,
            sentence,
            "count of cases in the justice periods sentenced or open with no arrest found, or sentenced before it "
            "(not in arrest_to_sentence_days_diff)",
        ),
    ]


def vulnerability_counts(referred: DataFrame) -> dict[str, int]:
    """Referred people (one row each) -> people with each vulnerability, any, and >1 MH need."""
    flags = {f"vuln_{v}": F.coalesce(F.col(f"vuln_{v}"), F.lit(False)) for v in VULNERABILITIES}
    any_flag = F.lit(False)
    for flag in flags.values():
        any_flag = any_flag | flag
    counts = (
        referred.agg(
            F.count("*").alias("people"),
            F.sum(any_flag.cast("int")).alias("any_vulnerability"),
            F.sum((F.col("mh_needs") >= 2).cast("int")).alias("multiple_mh_needs"),
            *[F.sum(flag.cast("int")).alias(name) for name, flag in flags.items()],
        )
        .first()
        .asDict()
    )
    return {k: int(v or 0) for k, v in counts.items()}


def no_prior_contact_counts(panel: DataFrame, first: int, last: int) -> dict[str, int]:
    """Evaluation-cohort panel -> people, and people with no health-source record in [first, last]."""
    prior = (
        panel.filter((F.col("cohort") == EVALUATION) & F.col("rel_month").between(first, last))
        .groupBy("person_key")
        .agg(F.sum(HEALTH_CONTACT).alias("contacts"))
    )
    row = prior.agg(F.count("*").alias("people"), F.sum((F.col("contacts") == 0).cast("int")).alias("none")).first()
    return {"people": int(row["people"]), "none": int(row["none"] or 0)}


def percentage(estimand: str, k: int, n: int) -> dict:
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return {**_row(estimand, None, None, None, 0, WILSON), "k": 0}
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return {**_row(estimand, 100 * k / n, 100 * low, 100 * high, n, WILSON), "k": k}


def vulnerability_profile(counts: dict[str, int]) -> list[dict]:
    """Every vulnerability's share among referred people (the table behind the profile)."""
    n = counts["people"]
    names = ["any_vulnerability", *[f"vuln_{v}" for v in VULNERABILITIES], "multiple_mh_needs"]
    return [
        {
            "vulnerability": name.removeprefix("vuln_"),
            "people": counts[name],
            "referred": n,
            "pct": 100 * counts[name] / n if n else None,
        }
        for name in names
    ]


def unobserved_prior(starts: dict[str, dt.date], first_index: dt.date, prior_first: int) -> str:
    """What pct_no_prior_contact's method says of the health sources that began after the prior
    months of the evaluation cohort's first index month began (starts: cohorts.source_starts)."""
    first = first_index.year * 12 + first_index.month - 1 + prior_first
    begun = dt.date(first // 12, first % 12 + 1, 1)
    late = [f"{source} {day:%Y-%m}" for source, day in sorted(starts.items()) if day > begun]
    if not late:
        return ""
    return f"; sources beginning after {begun:%Y-%m} ({', '.join(late)}): no record of them before they began"


def descriptive_estimates(
    cohorts: DataFrame,
    referred: DataFrame,
    panel: DataFrame,
    prior_months: tuple[int, int],
    starts: dict[str, dt.date],
) -> list[dict]:
    """The descriptive rows of the results table (cohorts: the cohort index; starts:
    cohorts.source_starts, named in pct_no_prior_contact's method where they began late)."""
    sizes = cohort_sizes(cohorts)
    first_index = sizes.get(EVALUATION, {}).get("first_index")
    unobserved = unobserved_prior(starts, first_index, prior_months[0]) if first_index else ""
    v = vulnerability_counts(referred)
    prior = no_prior_contact_counts(panel, *prior_months)
    no_prior = percentage("pct_no_prior_contact", prior["none"], prior["people"])
    return [
        *size_rows(sizes),
        percentage("pct_any_vulnerability", v["any_vulnerability"], v["people"]),
        percentage("pct_mental_health", v["vuln_mental_health"], v["people"]),
        percentage("pct_substance_misuse", v["vuln_substance_misuse"], v["people"]),
        percentage("pct_multiple_mh_needs", v["multiple_mh_needs"], v["people"]),
        {**no_prior, "method": no_prior["method"] + unobserved},
    ]


def _row(estimand, estimate, ci_low, ci_high, n, method) -> dict:
    return {
        "estimand": estimand,
        "estimate": estimate,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value": None,
        "n": n,
        "method": method,
    }
