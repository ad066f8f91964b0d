"""Statistical disclosure control: the one step every released output passes through.

NHS Digital's rule for HES outputs: counts of 1 to 7 are suppressed and every other count is
rounded to the nearest 5; percentages are computed from the rounded figures; a mean or median
of 1 to 7 values is suppressed; a model estimate resting on fewer than 10 people or fewer than 10
residual degrees of freedom is withheld. Thresholds come from conf (a stricter TRE may use 10).
Internal Delta tables stay unrounded; only what is written to results/ and MLflow is released.

A table is released by naming what each column is (`Spec`); every value changed is recorded in
the run's SDC report (file, row, column, action, reason), never silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rules:
    suppress_below: int = 8        # counts 1..suppress_below-1 are suppressed
    round_to: int = 5
    min_people_model: int = 10
    min_residual_df: int = 10


@dataclass
class Report:
    """What the disclosure-control step changed, for results/sdc_report.csv."""
    rows: list[dict] = field(default_factory=list)

    def note(self, output: str, row: str, column: str, action: str, reason: str) -> None:
        self.rows.append({"output": output, "row": row, "column": column, "action": action, "reason": reason})


def released_count(n: int | None, rules: Rules) -> int | None:
    """0 stays 0; 1..7 become None (suppressed); anything else is rounded to the nearest 5."""
    if n is None or n == 0:
        return n
    if 0 < n < rules.suppress_below:
        return None
    return int(rules.round_to * round(n / rules.round_to))


def released_percentage(k: int | None, n: int | None, rules: Rules) -> float | None:
    """100 k / n from the released (rounded) figures; suppressed if either is."""
    k_r, n_r = released_count(k, rules), released_count(n, rules)
    if k_r is None or not n_r:
        return None
    return 100 * k_r / n_r


@dataclass(frozen=True)
class Spec:
    """How to release a table: which columns are counts, and which are derived from counts."""
    key: list[str]                                              # columns naming a row in the report
    counts: list[str] = field(default_factory=list)             # people or events
    percentages: dict[str, tuple[str, str]] = field(default_factory=dict)   # column -> (numerator, denominator)
    ratios: dict[str, tuple[str, str]] = field(default_factory=dict)        # column -> (numerator, denominator), as a rate
    summaries: dict[str, str] = field(default_factory=dict)     # mean/median column -> the count of values behind it


def release(output: str, rows: list[dict], spec: Spec, rules: Rules, report: Report) -> list[dict]:
    """Rows as they may leave the secure environment; changes are noted in `report`."""
    released = []
    for row in rows:
        name = "|".join(str(row.get(k)) for k in spec.key)
        out = dict(row)
        for column, count_column in spec.summaries.items():
            n = row.get(count_column)
            if n is not None and 0 < n < rules.suppress_below and row.get(column) is not None:
                out[column] = None
                report.note(output, name, column, "suppressed", f"summary of {n} values (< {rules.suppress_below})")
        for column, (num, den) in {**spec.percentages, **spec.ratios}.items():
            k, n = released_count(row.get(num), rules), released_count(row.get(den), rules)
            scale = 100 if column in spec.percentages else 1
            value = None if k is None or not n else scale * k / n
            if value != row.get(column):
                report.note(output, name, column, "recomputed" if value is not None else "suppressed",
                            "from rounded counts" if value is not None else "a count behind it is 1-7")
            out[column] = value
        for column in spec.counts:
            n = row.get(column)
            r = released_count(n, rules)
            if r != n:
                report.note(output, name, column, "suppressed" if r is None else "rounded",
                            f"count 1-{rules.suppress_below - 1}" if r is None else f"to nearest {rules.round_to}")
            out[column] = r
        released.append(out)
    return released


ESTIMATE_COLUMNS = ("estimate", "ci_low", "ci_high", "p_value")


def release_model_row(output: str, name: str, row: dict, columns: tuple[str, ...], people: int | None,
                      residual_df: int | None, rules: Rules, report: Report) -> dict:
    """A model's row with `columns` withheld when it rests on too few people or residual df."""
    out = dict(row)
    reasons = []
    if people is not None and people < rules.min_people_model:
        reasons.append(f"{people} people (< {rules.min_people_model})")
    if residual_df is not None and residual_df < rules.min_residual_df:
        reasons.append(f"{residual_df} residual df (< {rules.min_residual_df})")
    if reasons and any(row.get(c) is not None for c in columns):
        for column in columns:
            out[column] = None
        report.note(output, name, columns[0], "withheld", "; ".join(reasons))
    return out


def _released_n(output: str, row: dict, out: dict, rules: Rules, report: Report) -> None:
    out["n"] = released_count(row.get("n"), rules)
    if out["n"] != row.get("n"):
        report.note(output, row["estimand"], "n", "suppressed" if out["n"] is None else "rounded",
                    f"to nearest {rules.round_to}" if out["n"] is not None else f"count 1-{rules.suppress_below - 1}")


def release_estimate(row: dict, people: int | None, residual_df: int | None, rules: Rules, report: Report,
                     output: str = "estimates.csv") -> dict:
    """A model estimate withheld when it rests on too few people or residual degrees of freedom."""
    out = release_model_row(output, row["estimand"], row, ESTIMATE_COLUMNS, people, residual_df, rules, report)
    _released_n(output, row, out, rules, report)
    return out


def release_count_estimate(row: dict, rules: Rules, report: Report, output: str = "estimates.csv") -> dict:
    """A results-table row whose estimate is itself a count of people (n_evaluation, n_historic)."""
    out = dict(row)
    out["estimate"] = released_count(row.get("estimate"), rules)
    if out["estimate"] != row.get("estimate"):
        report.note(output, row["estimand"], "estimate", "suppressed" if out["estimate"] is None else "rounded",
                    f"to nearest {rules.round_to}" if out["estimate"] is not None else f"count 1-{rules.suppress_below - 1}")
    _released_n(output, row, out, rules, report)
    return out


def release_percentage_estimate(row: dict, k: int, rules: Rules, report: Report, output: str = "estimates.csv") -> dict:
    """A percentage of people (k of n): recomputed from the rounded k and n; with its interval
    suppressed too when k or n is 1-7. The Wilson interval is from the exact counts."""
    out = dict(row)
    value = released_percentage(k, row.get("n"), rules)
    if value is None and row.get("estimate") is not None:
        for column in ESTIMATE_COLUMNS:
            out[column] = None
        report.note(output, row["estimand"], "estimate", "suppressed", "a count behind it is 1-7")
    elif value != row.get("estimate"):
        out["estimate"] = value
        report.note(output, row["estimand"], "estimate", "recomputed", "from rounded counts")
    _released_n(output, row, out, rules, report)
    return out
