"""Statistical disclosure control: the one step every released output passes through.

NHS England's rules for HES outputs: counts from 1 to the threshold (7) are suppressed and every
other count is rounded to the nearest 5; percentages and rates are computed from the rounded
figures, to one decimal only on a rounded denominator of at least 4,000 (whole percent
otherwise), and their intervals from the rounded figures too (an interval from the exact counts
would identify them). A mean or median of no more values than the threshold is suppressed, and
so is one a few values dominate (the nk and p-ratio rules SACRO and ACRO apply: the two largest
values hold more than 90% of the total, or the rest is less than 10% of the largest). A model
estimate resting on fewer than 10 people or residual degrees of freedom is withheld, and so is a
per-month or per-cell model output any of whose cells holds a count above zero and at most the threshold (a
saturated model's ratio is an exact function of its cells' counts). Thresholds come from conf
(`disclosure:`; a trusted research environment may ask for 10).

Internal Delta tables stay unrounded; only what is written to results/ and MLflow is released.
A table is released by naming what each column is (`Spec`). The run's SDC report records the rule
applied to every released cell (file, row, column, action, reason), changed or not, so that no
cell's absence from it reveals an exact value; its reasons name rules, never a count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ld_spark.config import DisclosureConf
from ld_spark.estimators import Z

# The rules are the config's disclosure section (conf/base.yaml `disclosure`, defaults there).
Rules = DisclosureConf


# Reasons name the rule, never a number of people or values (the report is released too).
SMALL = "count above zero and at most the threshold"
ROUNDED = "rounded to the rounding base"
ZERO = "zero is released as zero"
FROM_ROUNDED = "computed from the rounded counts"
BEHIND_SMALL = "a count behind it is above zero and at most the threshold"
FEW_VALUES = "a mean or median of no more values than the threshold"
DOMINATED = "a few values dominate a mean it rests on (nk or p-ratio rule)"
FEW_PEOPLE = "a model on fewer people than the minimum"
FEW_DF = "a model with fewer residual degrees of freedom than the minimum"
SMALL_CELL = "a cell of the model holds a count above zero and at most the threshold"
ENOUGH = "a model on enough people, residual degrees of freedom and cells"
TEST_ROUNDED = "a test statistic to one decimal, its p-value from that, to two significant figures"


@dataclass
class Report:
    """The rule applied to every released cell, for results/sdc_report.csv."""

    rows: list[dict] = field(default_factory=list)

    def note(self, output: str, row: str, column: str, action: str, reason: str) -> None:
        self.rows.append({"output": output, "row": row, "column": column, "action": action, "reason": reason})


def small(n: int | None, rules: Rules) -> bool:
    return n is not None and 0 < n <= rules.threshold


def released_count(n: int | None, rules: Rules) -> int | None:
    """0 stays 0; 1..threshold become None (suppressed); anything else is rounded to the nearest 5."""
    if n is None or n == 0:
        return n
    if small(n, rules):
        return None
    return int(rules.round_to * round(n / rules.round_to))


def count_rule(n: int | None, rules: Rules) -> tuple[int | None, str, str]:
    """(released value, action, reason) for a count."""
    if n is None:
        return None, "suppressed", "not available"
    if n == 0:
        return 0, "released", ZERO
    if small(n, rules):
        return None, "suppressed", SMALL
    return released_count(n, rules), "rounded", ROUNDED


def decimals(n_released: int, rules: Rules) -> int:
    """One decimal on a rounded denominator of at least rules.one_decimal_from, else whole percent."""
    return 1 if n_released >= rules.one_decimal_from else 0


def released_percentage(k: int | None, n: int | None, rules: Rules) -> float | None:
    """100 k / n from the released (rounded) figures, at the precision the denominator allows."""
    k_r, n_r = released_count(k, rules), released_count(n, rules)
    if k_r is None or not n_r:
        return None
    return round(100 * k_r / n_r, decimals(n_r, rules))


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for k of n, in percent."""
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n))
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def released_wilson(k: int | None, n: int | None, rules: Rules) -> tuple[float, float] | None:
    """The Wilson interval of the released (rounded) k of n, at the percentage's precision."""
    k_r, n_r = released_count(k, rules), released_count(n, rules)
    if k_r is None or not n_r or k_r > n_r:
        return None
    low, high = wilson(k_r, n_r)
    return round(low, decimals(n_r, rules)), round(high, decimals(n_r, rules))


def dominated(top_share: float | None, p_ratio: float | None, rules: Rules) -> bool:
    """True when a mean's values are concentrated enough to reveal its largest contributors:
    top_share is the largest share of a cell's total held by its two largest values, p_ratio the
    smallest (total - two largest) / largest over cells (estimators.concentration)."""
    return (top_share is not None and top_share > rules.nk_share) or (p_ratio is not None and p_ratio < rules.p_ratio)


@dataclass(frozen=True)
class Spec:
    """How to release a table: which columns are counts, and which are derived from counts."""

    key: list[str]  # columns naming a row in the report
    counts: list[str] = field(default_factory=list)  # people or events
    percentages: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (numerator, denominator)
    ratios: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (numerator, denominator), as a rate
    summaries: dict[str, str] = field(default_factory=dict)  # mean/median column -> the count of values behind it


def release(output: str, rows: list[dict], spec: Spec, rules: Rules, report: Report) -> list[dict]:
    """Rows as they may leave the secure environment; the rule for every cell noted in `report`."""
    released = []
    for row in rows:
        name = "|".join(str(row.get(k)) for k in spec.key)
        out = dict(row)
        for column, count_column in spec.summaries.items():
            if small(row.get(count_column), rules) and row.get(column) is not None:
                out[column] = None
                report.note(output, name, column, "suppressed", FEW_VALUES)
            else:
                report.note(output, name, column, "released", "a mean or median of more values than the threshold")
        for column, (num, den) in spec.percentages.items():
            out[column] = released_percentage(row.get(num), row.get(den), rules)
            report.note(
                output,
                name,
                column,
                *(("recomputed", FROM_ROUNDED) if out[column] is not None else ("suppressed", BEHIND_SMALL)),
            )
        for column, (num, den) in spec.ratios.items():
            k, n = released_count(row.get(num), rules), released_count(row.get(den), rules)
            out[column] = None if k is None or not n else k / n
            report.note(
                output,
                name,
                column,
                *(("recomputed", FROM_ROUNDED) if out[column] is not None else ("suppressed", BEHIND_SMALL)),
            )
        for column in spec.counts:
            out[column], action, reason = count_rule(row.get(column), rules)
            report.note(output, name, column, action, reason)
        released.append(out)
    return released


ESTIMATE_COLUMNS = ("estimate", "ci_low", "ci_high", "p_value")


def model_reasons(
    people: int | None, residual_df: int | None, rules: Rules, smallest_cell: int | None = None
) -> list[str]:
    """Why a model output may not be released (empty: it may)."""
    reasons = []
    if people is not None and people < rules.min_people_model:
        reasons.append(FEW_PEOPLE)
    if residual_df is not None and residual_df < rules.min_residual_df:
        reasons.append(FEW_DF)
    if small(smallest_cell, rules):
        reasons.append(SMALL_CELL)
    return reasons


def release_model_row(
    output: str,
    name: str,
    row: dict,
    columns: tuple[str, ...],
    people: int | None,
    residual_df: int | None,
    rules: Rules,
    report: Report,
    smallest_cell: int | None = None,
) -> dict:
    """A model's row with `columns` withheld when it rests on too few people, residual df, or a
    cell holding a small count."""
    out = dict(row)
    reasons = model_reasons(people, residual_df, rules, smallest_cell)
    if reasons:
        for column in columns:
            out[column] = None
        report.note(output, name, columns[0], "withheld", "; ".join(reasons))
    elif row.get(columns[0]) is not None:
        report.note(output, name, columns[0], "released", ENOUGH)
    return out


def _released_n(output: str, row: dict, out: dict, rules: Rules, report: Report) -> None:
    out["n"], action, reason = count_rule(row.get("n"), rules)
    report.note(output, row["estimand"], "n", action, reason)


def release_estimate(
    row: dict,
    people: int | None,
    residual_df: int | None,
    rules: Rules,
    report: Report,
    output: str = "estimates.csv",
    smallest_cell: int | None = None,
) -> dict:
    """A model estimate withheld when it rests on too few people or residual degrees of freedom,
    or is an exact function of cells one of which holds a small count."""
    out = release_model_row(
        output, row["estimand"], row, ESTIMATE_COLUMNS, people, residual_df, rules, report, smallest_cell
    )
    _released_n(output, row, out, rules, report)
    return out


def release_share_estimate(row: dict, k: int, rules: Rules, report: Report, output: str = "estimates.csv") -> dict:
    """A model's percentage of events (k of n, person-clustered, logit interval): the percentage
    recomputed from the rounded k and n at the precision the rounded n allows, the model's
    interval kept at its width on the logit scale around it, and the p-value from those (the
    width is the design's, the centre no longer the exact counts'); all withheld when k or n is
    1..threshold or the model's interval has no width to keep."""
    from scipy import stats
    from scipy.special import logit

    out = release_model_row(
        output,
        row["estimand"],
        row,
        ESTIMATE_COLUMNS,
        row.get("people"),
        row.get("df_resid"),
        rules,
        report,
        row.get("smallest_cell"),
    )
    if out["estimate"] is not None:
        value = released_percentage(k, row.get("n"), rules)
        bounds = (row.get("ci_low"), row.get("ci_high"))
        if value is None or not 0 < value < 100 or not all(b is not None and 0 < b < 100 for b in bounds):
            out.update({c: None for c in ESTIMATE_COLUMNS})
            report.note(output, row["estimand"], "estimate", "suppressed", BEHIND_SMALL)
        else:
            half = (logit(bounds[1] / 100) - logit(bounds[0] / 100)) / 2
            places = decimals(released_count(row["n"], rules), rules)
            centre = logit(value / 100)
            low, high = (100 / (1 + math.exp(-(centre + s * half))) for s in (-1, 1))
            p = float(2 * stats.norm.sf(abs(centre) / (half / Z))) if half > 0 else None
            out.update({"estimate": value, "ci_low": round(low, places), "ci_high": round(high, places), "p_value": p})
            report.note(output, row["estimand"], "estimate", "recomputed", FROM_ROUNDED + ", interval recentred")
    _released_n(output, row, out, rules, report)
    return out


def release_test(row: dict, out: dict, report: Report, output: str = "estimates.csv") -> dict:
    """A test (a chi-square statistic and its p-value, no interval) computed from exact counts:
    the statistic to one decimal and the p-value that rounded statistic gives on its degrees of
    freedom (`row["test_df"]`), to two significant figures, so neither is an exact function from
    which the counts behind a released, rounded table could be solved for."""
    from scipy import stats

    if out["estimate"] is None:
        return out
    out = {**out, "estimate": round(out["estimate"], 1)}
    if out["p_value"] is not None:
        out["p_value"] = float(f"{stats.chi2.sf(out['estimate'], row['test_df']):.2g}")
    report.note(output, row["estimand"], "estimate", "rounded", TEST_ROUNDED)
    return out


def release_count_estimate(row: dict, rules: Rules, report: Report, output: str = "estimates.csv") -> dict:
    """A results-table row whose estimate is itself a count of people (n_evaluation, n_historic)."""
    out = dict(row)
    out["estimate"], action, reason = count_rule(row.get("estimate"), rules)
    report.note(output, row["estimand"], "estimate", action, reason)
    _released_n(output, row, out, rules, report)
    return out


def release_percentage_estimate(row: dict, k: int, rules: Rules, report: Report, output: str = "estimates.csv") -> dict:
    """A percentage of people (k of n) and its Wilson interval, both from the rounded k and n at
    the precision the rounded denominator allows; all suppressed when k or n is 1..threshold."""
    out = dict(row)
    if not row.get("n"):
        _released_n(output, row, out, rules, report)
        return out
    value = released_percentage(k, row.get("n"), rules)
    interval = released_wilson(k, row.get("n"), rules)
    if value is None or interval is None:
        out.update({c: None for c in ESTIMATE_COLUMNS})
        report.note(output, row["estimand"], "estimate", "suppressed", BEHIND_SMALL)
    else:
        out["estimate"], (out["ci_low"], out["ci_high"]) = value, interval
        report.note(output, row["estimand"], "estimate", "recomputed", FROM_ROUNDED + ", interval too")
    _released_n(output, row, out, rules, report)
    return out
