"""results/: every file released from the run is written here, after disclosure control.

`Publisher` is the one door out of the secure environment. Each table is named with its `Spec`
(which columns are counts, which are derived from counts) and released through `ld_spark.sdc`;
figures are drawn from the released rows; MLflow gets the released numbers. Everything changed
is listed in results/sdc_report.csv. The Delta tables, and the exact reconciliation kept under
linkage/ for the operator, are internal and stay unrounded.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ld_spark import sdc
from ld_spark.contract import RESULT_COLUMNS
from ld_spark.uptake import ONWARD

SPECS = {
    "figure1.csv": sdc.Spec(key=["outcome", "cohort", "rel_month"], counts=["persons", "events"],
                            ratios={"rate": ("events", "persons")}),
    "vulnerability_profile.csv": sdc.Spec(key=["vulnerability"], counts=["people", "referred"],
                                          percentages={"pct": ("people", "referred")}),
    "site_onward_referrals.csv": sdc.Spec(key=["site_code"], counts=["referrals", *ONWARD]),
    "declined_by_vulnerability.csv": sdc.Spec(key=["vulnerability"],
                                              counts=["people", "declined", "people_without", "declined_without"]),
    "linkage_quality.csv": sdc.Spec(key=["source_table"], counts=["n_records", "n_persons"]),
    "reconciliation.csv": sdc.Spec(key=["source_table"],
                                   counts=["read", "loaded", "quarantined", "duplicate", "superseded"]),
}
REPORT_COLUMNS = ["output", "row", "column", "action", "reason"]


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return path


class Publisher:
    def __init__(self, results: Path, rules: sdc.Rules):
        self.results, self.rules, self.report = results, rules, sdc.Report()
        results.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.results / name

    def table(self, name: str, columns: list[str], rows: list[dict]) -> list[dict]:
        """Release a table named in SPECS, write it, and return the released rows."""
        released = sdc.release(name, rows, SPECS[name], self.rules, self.report)
        write_csv(self.path(name), columns, released)
        return released

    def estimates(self, name: str, rows: list[dict], derived: dict[str, list[str]] | None = None) -> list[dict]:
        """Results-table rows: counts of people rounded, percentages from rounded counts, model
        estimates withheld on too few people or residual df; `derived` maps an estimand to the
        rows computed from it, withheld with it (the economics rest on custody_or)."""
        released = []
        for row in rows:
            if row["estimand"].startswith("n_"):
                out = sdc.release_count_estimate(row, self.rules, self.report, name)
            elif row.get("k") is not None:
                out = sdc.release_percentage_estimate(row, row["k"], self.rules, self.report, name)
            else:
                out = sdc.release_estimate(row, row.get("people"), row.get("df_resid"), self.rules, self.report, name)
            values = row.get("summarised_values")
            if values is not None and values < self.rules.suppress_below and out["estimate"] is not None:
                out.update({c: None for c in sdc.ESTIMATE_COLUMNS})
                self.report.note(name, row["estimand"], "estimate", "suppressed",
                                 f"rests on a mean/median of {values} values (< {self.rules.suppress_below})")
            released.append(out)
        for source, names in (derived or {}).items():
            by_name = {r["estimand"]: r for r in released}
            if source in by_name and by_name[source]["estimate"] is None:
                for r in released:
                    if r["estimand"] in names and r["estimate"] is not None:
                        r.update({c: None for c in sdc.ESTIMATE_COLUMNS})
                        self.report.note(name, r["estimand"], "estimate", "withheld", f"derived from {source}, withheld")
        write_csv(self.path(name), RESULT_COLUMNS, released)
        return released

    def event_study(self, name: str, rows: list[dict]) -> list[dict]:
        """Per-month rate ratios; a whole outcome's fit withheld on too few people or residual df."""
        released = [sdc.release_model_row(name, f"{r['outcome']}|{r['rel_month']}", r, ("rr", "ci_low", "ci_high"),
                                          r.get("people"), r.get("df_resid"), self.rules, self.report) for r in rows]
        write_csv(self.path(name), ["outcome", "rel_month", "rr", "ci_low", "ci_high"], released)
        return released

    def write_report(self) -> Path:
        """results/sdc_report.csv: every cell suppressed, rounded, recomputed or withheld, and why."""
        return write_csv(self.path("sdc_report.csv"), REPORT_COLUMNS, self.report.rows)

    def released_count(self, n: int | None) -> int | None:
        return sdc.released_count(n, self.rules)
