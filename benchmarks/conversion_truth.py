"""The conversion differences computed on the generator's own tables with the true person ids.

    .venv/bin/python benchmarks/conversion_truth.py --scale 0.25 --seeds 100 [--first-seed 1]

coverage.py checks the whole job: an interval that misses its planted value there may be the
estimator's fault (a variance too small for a ratio of few events) or the pipeline's (linkage,
cleaning, cohorts). This separates the two for iapt_conversion_diff and drug_conversion_diff. For
each seed it generates the extract in memory, counts each service's referrals and attendances
per cohort member and period straight from the raw tables (duplicate rows once, unparseable dates
left out, as the job does), resolves every record to its person with the generator's truth table,
and fits estimators.ratio_did on that. No Spark, no linkage: a few seconds a seed.

Writes benchmarks/results/conversion_truth_runs.csv (one row per seed and estimand) and
conversion_truth.md: coverage, mean and spread of the estimates against the mean standard error,
and, for the seeds coverage_findings_runs.csv also holds, how far the job's estimate lies from
this one.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from ld_spark import estimators  # noqa: E402
from ld_spark.config import load  # noqa: E402
from ld_spark.findings import CONVERSIONS  # noqa: E402
from ld_spark.synth import calendar as cal  # noqa: E402
from ld_spark.synth.generate import SUMMARY_TABLE, TRUTH_TABLE, generate_block, planted_findings  # noqa: E402
from ld_spark.synth.persons import COHORT, make_persons, n_blocks, site_onward_rates  # noqa: E402

FIELDS = ["scale", "seed", "estimand", "planted", "estimate", "ci_low", "ci_high", "covered", "n"]
PRE, POST = (-12, -1), (0, 11)
ATTENDED = {"5", "6"}


def _truth(tables: dict[str, pd.DataFrame], source: str) -> pd.Series:
    truth = tables[TRUTH_TABLE]
    truth = truth[truth["source_table"] == source]
    return pd.Series(truth["person_id"].str[1:].astype(int).to_numpy(), index=truth["record_key"].to_numpy())


def events(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Panel column -> (person_id, day) of each event, from the raw tables and the truth table.

    Written here again on purpose, in pandas and without the job's events module, linkage or
    cleaning: an independent oracle, so that where the job and this agree, neither is hiding
    the other's mistake."""
    episodes = tables["ndtms/episodes"].drop_duplicates("EPISODID")
    modalities = tables["ndtms/modalities"].drop_duplicates("MODID")
    episode_person = episodes["EPISODID"].map(_truth(tables, "ndtms.episodes"))
    episode_person.index = episodes["EPISODID"].to_numpy()
    referrals = tables["iapt/ids101_referral"].drop_duplicates("ServiceRequestId")
    referral_person = (referrals["OrgIDProv"] + "|" + referrals["LocalPatientId"]).map(
        _truth(tables, "iapt.ids001_mpi")
    )
    referral_person.index = referrals["ServiceRequestId"].to_numpy()
    contacts = tables["iapt/ids201_care_contact"].drop_duplicates("CareContactId")
    contacts = contacts[contacts["AttendOrDNACode"].isin(ATTENDED)]

    def frame(person: pd.Series, dates: pd.Series) -> pd.DataFrame:
        return pd.DataFrame({"person_id": person.to_numpy(), "day": pd.to_datetime(dates, errors="coerce").to_numpy()})

    return {
        "drug_referrals": frame(episode_person, episodes["REFLD"]),
        "drug_attendances": frame(modalities["EPISODID"].map(episode_person), modalities["MODST"]),
        "iapt_referrals": frame(referral_person, referrals["ReferralRequestReceivedDate"]),
        "iapt_attendances": frame(contacts["ServiceRequestId"].map(referral_person), contacts["CareContDate"]),
    }


def person_period_sums(persons: pd.DataFrame, found: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """person, evaluation, post and one count column per event kind: every cohort member who did
    not decline, in each cohort they belong to, with zeros where they had no events."""
    members = persons[(persons["role"].to_numpy() == COHORT) & ~persons["declined"].to_numpy(bool)]
    frames = []
    for evaluation, column in ((1, "ld_index_day"), (0, "hist_index_day")):
        people = members[members[column].notna()]
        index_month = pd.Series(cal.month_of(people[column].to_numpy().astype("int64")), index=people["person_id"])
        sums = pd.DataFrame(
            {"person": np.repeat(people["person_id"].to_numpy(), 2), "post": np.tile([0, 1], len(people))}
        )
        for kind, ev in found.items():
            ev = ev[ev["person_id"].isin(index_month.index) & ev["day"].notna()]
            month = ev["day"].dt.year.to_numpy() * 12 + ev["day"].dt.month.to_numpy() - 1
            rel = month - index_month.loc[ev["person_id"]].to_numpy()
            post = np.select([(rel >= PRE[0]) & (rel <= PRE[1]), (rel >= POST[0]) & (rel <= POST[1])], [0, 1], -1)
            counts = pd.DataFrame({"person": ev["person_id"].to_numpy(), "post": post})
            counts = counts[counts["post"] >= 0].groupby(["person", "post"]).size().rename(kind).reset_index()
            sums = sums.merge(counts, on=["person", "post"], how="left")
        frames.append(sums.fillna(0).assign(evaluation=evaluation))
    return pd.concat(frames, ignore_index=True)


def run_seed(cfg, scale: float, seed: int) -> list[dict]:
    rates = site_onward_rates(cfg, seed)
    sums, summaries = [], []
    for block in range(n_blocks(cfg, scale)):
        tables = generate_block(cfg, seed, scale, block, rates)
        summaries.append(tables[SUMMARY_TABLE])
        sums.append(person_period_sums(make_persons(cfg, seed, scale, block), events(tables)))
    df = pd.concat(sums, ignore_index=True)
    planted = planted_findings(cfg, pd.concat(summaries, ignore_index=True))
    rows = []
    for name, (attendances, referrals) in CONVERSIONS.items():
        e = estimators.ratio_did(name, df, attendances, referrals)
        rows.append(
            {
                "scale": scale,
                "seed": seed,
                "estimand": name,
                "planted": planted[name],
                "estimate": e.estimate,
                "ci_low": e.ci_low,
                "ci_high": e.ci_high,
                "covered": e.ci_low is not None and e.ci_low <= planted[name] <= e.ci_high,
                "n": e.n,
            }
        )
    return rows


def summarise(runs: pd.DataFrame, job: pd.DataFrame) -> str:
    lines = [
        "# The conversion differences on the generator's own tables, true person ids (no linkage)",
        "",
        "`benchmarks/conversion_truth.py`: per seed, counts from the raw tables resolved to people by",
        "the truth table, then `estimators.ratio_did` as the job fits it. The estimator's interval is",
        "right when coverage is near 0.95 and the spread of the estimates matches the mean SE.",
        "",
        "| scale | estimand | seeds | covered | coverage | planted | mean estimate | SD of estimates | mean SE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (scale, name), r in runs.groupby(["scale", "estimand"]):
        se = (r["ci_high"] - r["ci_low"]) / (2 * estimators.Z)
        lines.append(
            f"| {scale} | {name} | {r['seed'].min()}-{r['seed'].max()} | {int(r['covered'].sum())}/{len(r)} | "
            f"{r['covered'].mean():.2f} | {r['planted'].mean():.3f} | {r['estimate'].mean():.3f} | "
            f"{r['estimate'].std():.3f} | {se.mean():.3f} |"
        )
    both = runs.merge(job, on=["scale", "seed", "estimand"], suffixes=("", "_job"))
    if len(both):
        lines += [
            "",
            "## The job against the true ids, same seeds (coverage_findings_runs.csv)",
            "",
            "| estimand | seeds | job covered | true ids covered | largest abs(job - true ids) | median |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in both.groupby("estimand"):
            gap = (r["estimate_job"] - r["estimate"]).abs()
            lines.append(
                f"| {name} | {len(r)} | {int(r['covered_job'].sum())}/{len(r)} | {int(r['covered'].sum())}/{len(r)} | "
                f"{gap.max():.3f} | {gap.median():.3f} |"
            )
    return "\n".join(lines) + "\n"


def measure(cfg, scale: float, seeds: range, runs_path: Path) -> None:
    """Every seed's rows into runs_path (rewritten; flushed per seed, so a stopped run keeps them)."""
    with runs_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for seed in seeds:
            writer.writerows(run_seed(cfg, scale, seed))
            f.flush()
            print(f"seed {seed} done", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--summarise", action="store_true", help="only rewrite the table from the runs file")
    args = parser.parse_args()
    runs_path = RESULTS / "conversion_truth_runs.csv"
    if not args.summarise:
        measure(load().generator, args.scale, range(args.first_seed, args.first_seed + args.seeds), runs_path)
    job = pd.read_csv(RESULTS / "coverage_findings_runs.csv")
    job = job[job["estimand"].isin(list(CONVERSIONS))][["scale", "seed", "estimand", "estimate", "covered"]]
    text = summarise(pd.read_csv(runs_path), job)
    (RESULTS / "conversion_truth.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
