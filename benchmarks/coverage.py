"""Coverage of the 95% intervals: does each estimand's interval hold its planted value?

    .venv/bin/python benchmarks/coverage.py --scale 0.25 --seeds 20 [--first-seed 1]
    .venv/bin/python benchmarks/coverage.py --shape realistic --scale 1 --seeds 10

With --shape realistic the extracts are shaped like real ones (conf/shape_realistic.yaml) and
each seed is analysed twice from the same linked tables: the proven-reoffending rules (the job)
and the plain specification before them (analysis.justice_spec: plain, effects only); results go
to coverage_realistic_runs.csv and coverage_realistic.md, with a `spec` column.

For each seed: generate a synthetic extract, run the whole pipeline (linkage included) in one
Spark session, and compare the exact estimates (analysis/estimates, before disclosure control
withholds any) with _truth/planted.json. Writes
benchmarks/results/coverage_runs.csv (one row per seed and estimand, appended as seeds finish, so
an interrupted run keeps what it measured) and coverage.md (coverage per estimand). With 95%
intervals, coverage over K seeds should be near 0.95; for K = 20 anything from 17/20 up is
within sampling noise of it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FIELDS = ["scale", "seed", "estimand", "planted", "estimate", "ci_low", "ci_high", "covered", "n", "run_seconds"]
REALISTIC_FIELDS = ["shape", "spec", *FIELDS]
JUSTICE = [
    "offending_rr",
    "police_contact_rr",
    "custody_or",
    "sentence_length_ratio",
    "court_duration_days_diff",
    "hearings_per_case_rr",
    "adjournments_rr",
    "arrest_to_sentence_days_diff",
]


def _compare(planted: dict, estimates: dict, **tags) -> list[dict]:
    rows = []
    for name, value in planted.items():
        if name.startswith("n_") or name not in estimates:
            continue
        r = estimates[name]
        low, high = (float(r["ci_low"]), float(r["ci_high"])) if r["ci_low"] != "" else (None, None)
        rows.append(
            {
                **tags,
                "estimand": name,
                "planted": value,
                "estimate": r["estimate"],
                "ci_low": low,
                "ci_high": high,
                "covered": low is not None and low <= value <= high,
                "n": r["n"],
            }
        )
    return rows


def run_seed(spark, config, scale: float, seed: int, work: Path, generator=None, plain_too: bool = False) -> list[dict]:
    from ld_spark import catalog, effects, pipeline
    from ld_spark.synth.generate import generate

    raw, out = work / f"raw_{seed}", work / f"out_{seed}"
    generate(spark, generator or config.generator, seed=seed, scale=scale, out=raw)
    started = time.time()
    pipeline.run(spark, config, raw=str(raw), out=str(out))
    seconds = round(time.time() - started, 1)
    planted = json.loads((raw / "_truth" / "planted.json").read_text())
    # The exact estimates (analysis/estimates), not the released file: coverage is a property of
    # the intervals, and disclosure control may withhold a row whose cells are small.
    estimates = {
        r["estimand"]: {k: ("" if v is None else v) for k, v in r.asDict().items()}
        for r in catalog.read(spark, out, catalog.ESTIMATES).collect()
    }
    rows = _compare(planted, estimates, scale=scale, seed=seed, run_seconds=seconds)
    if plain_too:
        # The same linked tables under the plain specification: only the effects stage reruns.
        plain = config.model_copy(update={"analysis": config.analysis.model_copy(update={"justice_spec": "plain"})})
        fitted = effects.estimate(
            *(catalog.read(spark, out, t) for t in (catalog.PANEL, catalog.OFFENCES, catalog.COURT_CASES)),
            plain.analysis,
            plain.economics,
        )
        exact = {
            r["estimand"]: {k: ("" if v is None else v) for k, v in r.items()}
            for r in effects.results_table([], fitted)
        }
        rows = [{**r, "spec": "proven_reoffending"} for r in rows] + [
            {**r, "spec": "plain"}
            for r in _compare(planted, exact, scale=scale, seed=seed, run_seconds=seconds)
            if r["estimand"] in JUSTICE
        ]
    shutil.rmtree(raw)
    shutil.rmtree(out)
    return rows


def summarise_realistic(path: Path) -> str:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    lines = [
        "# Coverage on realistic extracts: proven-reoffending rules vs the plain specification",
        "",
        "`benchmarks/coverage.py --shape realistic`: extracts shaped like real ones "
        "(conf/shape_realistic.yaml: cut-off with open cases, historic index offences before their "
        "arrest, long custodial Crown cases, uncharged police contacts, custody taking people out); "
        "each seed's linked tables analysed under both specifications. Machine: "
        + os.environ.get("LD_BENCH_MACHINE", "this one")
        + ".",
        "",
    ]
    for scale in dict.fromkeys(r["scale"] for r in rows):
        at = [r for r in rows if r["scale"] == scale]
        seeds = sorted({int(r["seed"]) for r in at})
        seconds = sorted({(r["seed"], float(r["run_seconds"])) for r in at})
        lines += [
            f"## scale {scale}: {len(seeds)} seeds ({', '.join(map(str, seeds))}), median `ld-spark run` "
            f"{sorted(s for _, s in seconds)[len(seconds) // 2]:.0f} s",
            "",
            "| estimand | planted (mean) | rules: covered | rules: mean estimate | plain: covered | plain: mean estimate |",
            "|---|---|---|---|---|---|",
        ]
        for name in dict.fromkeys(r["estimand"] for r in at):
            cells = []
            for spec in ("proven_reoffending", "plain"):
                rs = [r for r in at if r["estimand"] == name and r["spec"] == spec]
                if not rs:
                    cells += ["", ""]
                    continue
                covered = sum(r["covered"] == "True" for r in rs)
                values = [float(r["estimate"]) for r in rs if r["estimate"]]
                cells += [
                    f"{covered}/{len(rs)} ({covered / len(rs):.2f})",
                    f"{sum(values) / len(values):.3f}" if values else "withheld",
                ]
            planted = [float(r["planted"]) for r in at if r["estimand"] == name]
            lines.append(f"| {name} | {sum(planted) / len(planted):.3f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


RATIO_SUFFIXES = ("_rr", "_or", "_ratio")


def z_spread(name: str, rows: list[dict]) -> float | None:
    """SD over seeds of (estimate - planted) / SE (log scale for ratios); None under 3 intervals."""
    from ld_spark import estimators

    log = name.endswith(RATIO_SUFFIXES)
    zs = []
    for r in rows:
        if not (r["estimate"] and r["ci_low"] and r["ci_high"]):
            continue
        value, low, high, planted = (float(r[k]) for k in ("estimate", "ci_low", "ci_high", "planted"))
        if log:
            value, low, high, planted = (math.log(v) for v in (value, low, high, planted))
        if high > low:
            zs.append((value - planted) / ((high - low) / (2 * estimators.Z)))  # SE from a 95% interval
    if len(zs) < 3:
        return None
    mean = sum(zs) / len(zs)
    return math.sqrt(sum((z - mean) ** 2 for z in zs) / (len(zs) - 1))


def binomial_tail(seeds: int, misses: int, coverage: float = 0.95) -> float:
    """P(at least `misses` of `seeds` intervals miss) when each covers with probability `coverage`."""
    return sum(math.comb(seeds, k) * (1 - coverage) ** k * coverage ** (seeds - k) for k in range(misses, seeds + 1))


def summarise(path: Path) -> str:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    by_scale: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_scale.setdefault(r["scale"], {}).setdefault(r["estimand"], []).append(r)
    lines = [
        "# Coverage of the 95% intervals",
        "",
        "`benchmarks/coverage.py`: generate, run the whole pipeline, check each planted value against "
        "its interval; one row per estimand. Machine: " + os.environ.get("LD_BENCH_MACHINE", "this one") + ".",
        "",
    ]
    for scale, estimands in by_scale.items():
        seeds = sorted({int(r["seed"]) for rs in estimands.values() for r in rs})
        seconds = [float(rs[0]["run_seconds"]) for rs in zip(*estimands.values())] if estimands else []
        lines += [
            f"## scale {scale}: {len(seeds)} seeds ({min(seeds)}..{max(seeds)}), "
            f"median `ld-spark run` {sorted(seconds)[len(seconds) // 2]:.0f} s",
            "",
            "| estimand | planted | covered | coverage | mean estimate | SD of z |",
            "|---|---|---|---|---|---|",
        ]
        for name, rs in estimands.items():
            covered = sum(r["covered"] == "True" for r in rs)
            values = [float(r["estimate"]) for r in rs if r["estimate"]]
            mean = sum(values) / len(values) if values else float("nan")
            spread = z_spread(name, rs)
            lines.append(
                f"| {name} | {float(rs[0]['planted']):.3f} | {covered}/{len(rs)} | {covered / len(rs):.2f} | {mean:.3f} "
                f"| {'' if spread is None else f'{spread:.2f}'} |"
            )
        lines += [
            "",
            "SD of z: the standard deviation over seeds of z = (estimate - planted) / SE, with SE = the "
            "interval's width / 3.92 (on the log scale for ratios). Near 1 when an interval is as wide "
            "as the estimate's spread, whatever the few seeds' hit count says: with 95% intervals, "
            f"{len(seeds)}/{len(seeds)} covered happens with probability {0.95 ** len(seeds):.2f}, and "
            f"{len(seeds) - 3}/{len(seeds)} or fewer with {binomial_tail(len(seeds), 3):.2f}.",
            "",
        ]
    lines += [
        "`site_heterogeneity_iapt_p` and `site_heterogeneity_mh_p` are tests (a chi-square and its "
        "p-value, no interval), so they have no coverage: the generator draws each site's onward "
        "rates from wide Beta distributions (there is no equal-rates truth to cover), and "
        "tests/test_pipeline_run.py checks that both tests reject equality.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--shape", choices=["plain", "realistic"], default="plain")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--summarise", action="store_true", help="only rewrite the summary from the runs file")
    args = parser.parse_args()
    realistic = args.shape == "realistic"
    results = args.results or RESULTS / ("coverage_realistic_runs.csv" if realistic else "coverage_runs.csv")
    if not args.summarise:
        measure(args, results, realistic)
    # The summary sits beside its runs file: coverage_runs.csv -> coverage.md.
    summary = results.with_name(results.stem.removesuffix("_runs") + ".md")
    summary.write_text((summarise_realistic(results) if realistic else summarise(results)) + "\n")
    print(summary.read_text())


def measure(args: argparse.Namespace, results: Path, realistic: bool) -> None:
    """Run every seed, appending its rows to `results` as it finishes."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from ld_spark import config as config_module
    from ld_spark import session

    work = Path(tempfile.mkdtemp(prefix="ld-coverage-"))
    config = config_module.load("local")
    config = config.model_copy(
        update={
            "mlflow": config.mlflow.model_copy(
                update={"tracking_uri": f"sqlite:///{work / 'mlflow.db'}", "experiment": "ld-spark-coverage"}
            ),
            # Coverage reads estimates.csv only: the sensitivity suite (1.5x the run) is left out.
            "sensitivity": config.sensitivity.model_copy(update={"enabled": False}),
        }
    )
    generator = config_module.load("local", "shape_realistic").generator if realistic else config.generator
    spark = session.build(config)
    spark.sparkContext.setLogLevel("ERROR")
    new = not results.exists()
    try:
        with results.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=REALISTIC_FIELDS if realistic else FIELDS)
            if new:
                writer.writeheader()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rows = run_seed(spark, config, args.scale, seed, work, generator, plain_too=realistic)
                if realistic:
                    rows = [{"shape": "realistic", **r} for r in rows]
                writer.writerows(rows)
                handle.flush()
                print(
                    f"seed {seed}: {sum(r['covered'] for r in rows)}/{len(rows)} covered ({rows[0]['run_seconds']} s)",
                    flush=True,
                )
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
