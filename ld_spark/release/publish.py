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

import csv
import hashlib
import json
import math
import os
import shutil
import tempfile
from io import StringIO
from pathlib import Path

from ld_spark import fs
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
    "figure1_self_rated_health.csv": sdc.Spec(
        key=["cohort", "rel_month"], counts=["reviews"], summaries={"mean_score": "reviews"}
    ),
    "representativeness.csv": sdc.Spec(
        key=["characteristic", "level"],
        counts=["consenting", "consenting_total", "declined", "declined_total"],
        percentages={
            "consenting_pct": ("consenting", "consenting_total"),
            "declined_pct": ("declined", "declined_total"),
        },
    ),
    "linkage_blocking.csv": sdc.Spec(key=["rule"], counts=["comparisons", "blocks", "largest_block"]),
    "reconciliation.csv": sdc.Spec(
        key=["source_table"], counts=["read", "loaded", "quarantined", "duplicate", "superseded", "erased"]
    ),
}
REPORT_COLUMNS = ["output", "row", "column", "action", "reason"]
SENSITIVITY_COLUMNS = ["analysis", "estimand", "estimate", "ci_low", "ci_high", "p_value", "n"]  # contract 4b
GROUPED_COLUMNS = {"analysis": SENSITIVITY_COLUMNS, "subgroup": ["subgroup", *RESULT_COLUMNS]}
REPRESENTATIVENESS_COLUMNS = [
    "characteristic",
    "level",
    "consenting",
    "consenting_total",
    "consenting_pct",
    "declined",
    "declined_total",
    "declined_pct",
    "std_diff",
]


def standardised_difference(pct_a: float | None, pct_b: float | None) -> float | None:
    """(a - b) / sqrt((a(1-a) + b(1-b)) / 2) of two percentages: a difference of 0.1 or more is
    the usual mark of groups that are not alike on a characteristic."""
    if pct_a is None or pct_b is None:
        return None
    a, b = pct_a / 100, pct_b / 100
    spread = math.sqrt((a * (1 - a) + b * (1 - b)) / 2)
    return round((a - b) / spread, 3) if spread > 0 else 0.0


def write_csv(path: fs.Location, columns: list[str], rows: list[dict]) -> fs.Location:
    """The rows as a CSV file, replaced whole (fs.write_bytes: never a truncated file)."""
    text = StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return fs.write_text(path, text.getvalue())


def write_text(path: fs.Location, text: str) -> fs.Location:
    return fs.write_text(path, text)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MANIFEST = "manifest.json"


class Publisher:
    """Writes released files into a staging folder; `commit` adds the manifest and puts the folder
    in place as results/. A file placed in results/ by hand, or left by an older run, is never
    published.

    Local results/: the staging folder sits beside it and is swapped in by two renames, so a run
    that dies leaves the previous results/ whole. Under a URL (an object store has no rename of
    a folder): the staging folder is local to the driver, and commit first deletes the old
    manifest, then replaces the files and writes the new manifest last, so a results/ without a
    manifest is one a run did not finish publishing."""

    def __init__(self, results: fs.Location, rules: sdc.Rules):
        self.results, self.rules, self.report = results, rules, sdc.Report()
        if fs.is_url(results):
            self._local = tempfile.TemporaryDirectory(prefix="ld-spark-results-")
            self.staging = Path(self._local.name)
            return
        self.staging = results.with_name(f".{results.name}.staging")
        self.previous = results.with_name(f".{results.name}.previous")
        if self.previous.exists() and not results.exists():
            os.replace(self.previous, results)  # a run killed between commit's two renames
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)

    def path(self, name: str) -> Path:
        return self.staging / name

    def local(self, name: str) -> Path:
        """A committed file, on the driver's disk (for MLflow to upload)."""
        return self.staging / name if fs.is_url(self.results) else self.results / name

    def commit(self, run_id: str, delta_versions: dict[str, int]) -> dict:
        """Write results/manifest.json (the run, every released file's SHA-256, the Delta table
        versions it was computed from) and put the staging folder in place as results/."""
        files = {p.name: sha256(p) for p in sorted(self.staging.iterdir()) if p.is_file()}
        manifest = {"run_id": run_id, "files": files, "delta_versions": dict(sorted(delta_versions.items()))}
        write_text(self.path(MANIFEST), json.dumps(manifest, indent=2) + "\n")
        if fs.is_url(self.results):
            fs.delete(fs.join(self.results, MANIFEST))
            for entry in fs.listing(self.results):
                if entry.name not in files:
                    fs.delete(entry.location)
            for name in [*files, MANIFEST]:
                fs.write_bytes(fs.join(self.results, name), self.path(name).read_bytes())
            return manifest
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

    def grouped(
        self, name: str, group: str, rows: list[dict], derived: dict[str, list[str]] | None = None
    ) -> list[dict]:
        """Results-table rows for each value of `group` (sensitivity.csv: the analysis;
        subgroups.csv: the subgroup), released as the results table's are; the SDC report names a
        cell `group value|estimand`, and `derived` is withheld with its source within its group."""
        keyed = [{**r, "estimand": f"{r[group]}|{r['estimand']}"} for r in rows]
        values = dict.fromkeys(r[group] for r in rows)
        within = {
            f"{v}|{source}": [f"{v}|{n}" for n in names] for v in values for source, names in (derived or {}).items()
        }
        released = [
            {**r, "estimand": r["estimand"].split("|", 1)[1]} for r in self._released_estimates(name, keyed, within)
        ]
        write_csv(self.path(name), GROUPED_COLUMNS[group], released)
        return released

    def representativeness(self, name: str, rows: list[dict]) -> list[dict]:
        """Consenting vs declined counts released as counts and percentages of rounded counts;
        the standardised difference of the two released percentages added (from them only)."""
        released = sdc.release(name, rows, SPECS[name], self.rules, self.report)
        for r in released:
            r["std_diff"] = standardised_difference(r["consenting_pct"], r["declined_pct"])
            self.report.note(
                name,
                f"{r['characteristic']}|{r['level']}",
                "std_diff",
                *(("recomputed", sdc.FROM_ROUNDED) if r["std_diff"] is not None else ("suppressed", sdc.BEHIND_SMALL)),
            )
        write_csv(self.path(name), REPRESENTATIVENESS_COLUMNS, released)
        return released

    def _released_estimates(self, name: str, rows: list[dict], derived: dict[str, list[str]] | None) -> list[dict]:
        released = []
        for row in rows:
            if row["estimand"].startswith("n_"):
                out = sdc.release_count_estimate(row, self.rules, self.report, name)
            elif row.get("k") is not None:
                out = sdc.release_percentage_estimate(row, row["k"], self.rules, self.report, name)
            elif row.get("share_k") is not None:
                out = sdc.release_share_estimate(row, row["share_k"], self.rules, self.report, name)
            else:
                out = sdc.release_estimate(
                    row, row.get("people"), row.get("df_resid"), self.rules, self.report, name, row.get("smallest_cell")
                )
                if row.get("test_df") is not None:
                    out = sdc.release_test(row, out, self.report, name)
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
                            # The estimand, not its group: a group's name may hold digits (m24_m13).
                            name,
                            r["estimand"],
                            "estimate",
                            "withheld",
                            f"derived from {source.split('|')[-1]}, withheld",
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
