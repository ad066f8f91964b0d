"""results/: every file released from the run is written here, after disclosure control.

`Publisher` is the one door out of the secure environment. Each table is named with its `Spec`
(which columns are counts, which are derived from counts) and released through `ld_spark.release.sdc`;
figures are drawn from the released rows; MLflow gets the released numbers, and uploads only the
files the manifest lists. results/sdc_report.csv records the rule applied to every released cell.
results/ changes only whole: files are staged beside it, then moved into place with the manifest.
The Delta tables, and the exact reconciliation kept under linkage/ for the operator, are
internal and stay unrounded.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ld_spark.contract import ONWARD_REFERRALS, RESULT_COLUMNS
from ld_spark.release import sdc

LINK_METRICS = ("precision", "recall", "f1")
SPECS = {
    "figure1.csv": sdc.Spec(
        key=["outcome", "cohort", "rel_month"], counts=["persons", "events"], ratios={"rate": ("events", "persons")}
    ),
    "vulnerability_profile.csv": sdc.Spec(
        key=["vulnerability"], counts=["people", "referred"], percentages={"pct": ("people", "referred")}
    ),
    "site_onward_referrals.csv": sdc.Spec(key=["site_code"], counts=["referrals", *ONWARD_REFERRALS]),
    "declined_by_vulnerability.csv": sdc.Spec(
        key=["vulnerability"], counts=["people", "declined", "people_without", "declined_without"]
    ),
    # Pairwise precision, recall and F1 rest on the records counted: withheld with a small count.
    "linkage_quality.csv": sdc.Spec(
        key=["source_table"], counts=["n_records", "n_persons"], summaries=dict.fromkeys(LINK_METRICS, "n_records")
    ),
    "linkage_quality_by_cohort.csv": sdc.Spec(
        key=["cohort", "period", "source_table"],
        counts=["n_records", "n_persons"],
        summaries=dict.fromkeys(LINK_METRICS, "n_records"),
    ),
    "linkage_blocking.csv": sdc.Spec(key=["rule"], counts=["comparisons", "blocks", "largest_block"]),
    "reconciliation.csv": sdc.Spec(
        key=["source_table"], counts=["read", "loaded", "quarantined", "duplicate", "superseded"]
    ),
}
REPORT_COLUMNS = ["output", "row", "column", "action", "reason"]
SENSITIVITY_COLUMNS = ["analysis", "estimand", "estimate", "ci_low", "ci_high", "p_value", "n"]  # contract 4b


@contextlib.contextmanager
def atomic(path: Path, mode: str = "w", **kwargs) -> Iterator:
    """Open a sibling temporary file for writing and move it onto `path` only once it is whole:
    a run killed mid-write leaves the old file (or none), never a truncated one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open(mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with atomic(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return path


def write_text(path: Path, text: str) -> Path:
    with atomic(path) as handle:
        handle.write(text)
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MANIFEST = "manifest.json"


class Publisher:
    """Writes released files into a staging folder beside results/; `commit` adds the manifest
    and swaps the folder into place. A run that dies before it leaves the previous results/
    whole; a file placed in results/ by hand, or left by an older run, is never published."""

    def __init__(self, results: Path, rules: sdc.Rules):
        self.results, self.rules, self.report = results, rules, sdc.Report()
        self.staging = results.with_name(f".{results.name}.staging")
        self.previous = results.with_name(f".{results.name}.previous")
        if self.previous.exists() and not results.exists():
            os.replace(self.previous, results)  # a run killed between commit's two renames
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)

    def path(self, name: str) -> Path:
        return self.staging / name

    def commit(self, run_id: str, delta_versions: dict[str, int]) -> dict:
        """Write results/manifest.json (the run, every released file's SHA-256, the Delta table
        versions it was computed from) and move the staging folder into place as results/."""
        files = {p.name: sha256(p) for p in sorted(self.staging.iterdir()) if p.is_file()}
        manifest = {"run_id": run_id, "files": files, "delta_versions": dict(sorted(delta_versions.items()))}
        write_text(self.path(MANIFEST), json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(self.previous, ignore_errors=True)
        if self.results.exists():
            os.replace(self.results, self.previous)
        os.replace(self.staging, self.results)
        shutil.rmtree(self.previous, ignore_errors=True)
        return manifest

    def table(self, name: str, columns: list[str], rows: list[dict]) -> list[dict]:
        """Release a table named in SPECS, write it, and return the released rows."""
        released = sdc.release(name, rows, SPECS[name], self.rules, self.report)
        write_csv(self.path(name), columns, released)
        return released

    def estimates(self, name: str, rows: list[dict], derived: dict[str, list[str]] | None = None) -> list[dict]:
        """Results-table rows: counts of people rounded, percentages from rounded counts, model
        estimates withheld on too few people or residual df; `derived` maps an estimand to the
        rows computed from it, withheld with it (the economics rest on custody_or)."""
        released = self._released_estimates(name, rows, derived)
        write_csv(self.path(name), RESULT_COLUMNS, released)
        return released

    def sensitivity(self, name: str, rows: list[dict], derived: dict[str, list[str]] | None = None) -> list[dict]:
        """sensitivity.csv: each analysis's estimates released as the results table's are (the
        SDC report names a cell `analysis|estimand`), `derived` withheld with its source within
        the same analysis."""
        keyed = [{**r, "estimand": f"{r['analysis']}|{r['estimand']}"} for r in rows]
        analyses = dict.fromkeys(r["analysis"] for r in rows)
        within = {
            f"{a}|{source}": [f"{a}|{n}" for n in names] for a in analyses for source, names in (derived or {}).items()
        }
        released = [
            {**r, "estimand": r["estimand"].split("|", 1)[1]} for r in self._released_estimates(name, keyed, within)
        ]
        write_csv(self.path(name), SENSITIVITY_COLUMNS, released)
        return released

    def _released_estimates(self, name: str, rows: list[dict], derived: dict[str, list[str]] | None) -> list[dict]:
        released = []
        for row in rows:
            if row["estimand"].startswith("n_"):
                out = sdc.release_count_estimate(row, self.rules, self.report, name)
            elif row.get("k") is not None:
                out = sdc.release_percentage_estimate(row, row["k"], self.rules, self.report, name)
            else:
                out = sdc.release_estimate(row, row.get("people"), row.get("df_resid"), self.rules, self.report, name)
            # A mean or median behind the estimate: of too few values, or dominated by a few.
            reasons = [
                reason
                for reason, applies in (
                    (sdc.FEW_VALUES, sdc.small(row.get("summarised_values"), self.rules)),
                    (sdc.DOMINATED, sdc.dominated(row.get("top_share"), row.get("p_ratio"), self.rules)),
                )
                if applies
            ]
            if reasons and out["estimate"] is not None:
                out.update({c: None for c in sdc.ESTIMATE_COLUMNS})
                self.report.note(name, row["estimand"], "estimate", "suppressed", "; ".join(reasons))
            released.append(out)
        for source, names in (derived or {}).items():
            by_name = {r["estimand"]: r for r in released}
            if source in by_name and by_name[source]["estimate"] is None:
                for r in released:
                    if r["estimand"] in names and r["estimate"] is not None:
                        r.update({c: None for c in sdc.ESTIMATE_COLUMNS})
                        self.report.note(
                            name, r["estimand"], "estimate", "withheld", f"derived from {source}, withheld"
                        )
        return released

    def event_study(self, name: str, rows: list[dict]) -> list[dict]:
        """Per-month rate ratios: a whole outcome's fit withheld on too few people or residual df, a
        month withheld when a cell it is made of (its own or the reference's) holds a small count."""
        released = [
            sdc.release_model_row(
                name,
                f"{r['outcome']}|{r['rel_month']}",
                r,
                ("rr", "ci_low", "ci_high"),
                r.get("people"),
                r.get("df_resid"),
                self.rules,
                self.report,
                r.get("smallest_cell"),
            )
            for r in rows
        ]
        write_csv(self.path(name), ["outcome", "rel_month", "rr", "ci_low", "ci_high"], released)
        return released

    def write_report(self) -> Path:
        """results/sdc_report.csv: every cell suppressed, rounded, recomputed or withheld, and why."""
        return write_csv(self.path("sdc_report.csv"), REPORT_COLUMNS, self.report.rows)
