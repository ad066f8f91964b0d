"""What the sensitivity suite costs, and what it says on our generator.

    .venv/bin/python benchmarks/sensitivity.py --scale 1 --work /tmp/sensitivity

One synthetic extract (seed 1), run twice by `ld-spark run` in processes of their own: with the
suite switched off (`sensitivity.enabled: false`) and on (the default). Writes
benchmarks/results/sensitivity.md (both runs' stage times side by side; the placebo index's
effects and whether each interval contains no difference; the pre-trend tests) and
sensitivity_runs.csv (the stage times).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ld_spark.contract import EFFECT_FAMILIES  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "ld_spark.cli"]
STAGES = ["landing", "bronze", "linkage", "series", "effects", "sensitivity"]
DIFFERENCES = ("court_duration_days_diff", "arrest_to_sentence_days_diff")  # null = 0 days
SHOWN = [name for family in ("health", "justice", "timeliness") for name in EFFECT_FAMILIES[family]]


def run(raw: Path, out: Path, store: Path, overlays: list[str]) -> dict[str, float]:
    """`ld-spark run` in its own process: wall seconds and each stage's seconds (from MLflow)."""
    import mlflow

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    started = time.time()
    conf = [x for overlay in overlays for x in ("--conf", overlay)]
    done = subprocess.run(
        [*CLI, "run", "--raw", str(raw), "--out", str(out), *conf], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.time() - started
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    latest = mlflow.search_runs(experiment_names=["ld-spark"], order_by=["start_time DESC"]).iloc[0]
    return {"wall": wall, **{s: float(latest.get(f"metrics.stage_seconds.{s}", 0.0) or 0.0) for s in STAGES}}


def _number(value: str) -> float | None:
    return float(value) if value not in ("", None) else None


def placebo_rows(sensitivity_csv: Path) -> tuple[list[dict], list[dict]]:
    with sensitivity_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    cells = {(r["analysis"], r["estimand"]): r for r in rows}
    placebo, trends = [], []
    for name in SHOWN:
        r = cells[("placebo_index", name)]
        null = 0.0 if name in DIFFERENCES else 1.0
        low, high = _number(r["ci_low"]), _number(r["ci_high"])
        contains = None if low is None else low <= null <= high
        placebo.append({"estimand": name, **{k: r[k] for k in ("estimate", "ci_low", "ci_high")}, "contains": contains})
        t = cells[("pre_trend", name)]
        trends.append({"estimand": name, "chi2": t["estimate"], "p_value": t["p_value"]})
    return placebo, trends


def _fmt(value: str, digits: int = 2) -> str:
    return "withheld" if value in ("", None) else f"{float(value):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sensitivity_benchmark"))
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    raw = work / f"raw_{args.scale}"
    if not (raw / "_truth" / "generator.json").exists():
        subprocess.run(
            [*CLI, "generate", "--scale", str(args.scale), "--seed", str(args.seed), "--out", str(raw)],
            cwd=ROOT,
            check=True,
        )
    off_conf = work / "sensitivity_off.yaml"
    off_conf.write_text("sensitivity:\n  enabled: false\n")
    off = run(raw, work / "out_off", work / "mlflow.db", [str(off_conf)])
    on = run(raw, work / "out_on", work / "mlflow.db", [])
    with (RESULTS / "sensitivity_runs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["scale", "suite", "wall", *STAGES])
        writer.writeheader()
        writer.writerow({"scale": args.scale, "suite": "off", **{k: round(v, 1) for k, v in off.items()}})
        writer.writerow({"scale": args.scale, "suite": "on", **{k: round(v, 1) for k, v in on.items()}})
    placebo, trends = placebo_rows(work / "out_on" / "results" / "sensitivity.csv")
    judged = [p for p in placebo if p["contains"] is not None]
    share = sum(p["contains"] for p in judged) / max(len(judged), 1)
    lines = [
        f"# Sensitivity suite: cost and placebo (scale {args.scale}, seed {args.seed})",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "`ld-spark run` (conf/base.yaml) in its own process; seconds from the run's MLflow stage metrics.",
        "",
        "| stage | suite off (s) | suite on (s) |",
        "|---|---|---|",
        *[f"| {s} | {off[s]:.1f} | {on[s]:.1f} |" for s in STAGES],
        f"| **whole run (wall)** | **{off['wall']:.1f}** | **{on['wall']:.1f}** |",
        "",
        f"The suite adds {on['wall'] - off['wall']:.1f} s to the run ({100 * (on['wall'] / off['wall'] - 1):.0f}%).",
        "",
        "## placebo_index: every index moved 12 months earlier (no effect should show)",
        "",
        f"{sum(p['contains'] for p in judged)} of {len(judged)} estimable intervals contain no difference "
        f"({100 * share:.0f}%); {len(placebo) - len(judged)} withheld by disclosure control.",
        "",
        "| estimand | estimate | 95% CI | contains null |",
        "|---|---|---|---|",
        *[
            f"| {p['estimand']} | {_fmt(p['estimate'])} | {_fmt(p['ci_low'])} to {_fmt(p['ci_high'])} | "
            f"{'-' if p['contains'] is None else ('yes' if p['contains'] else '**no**')} |"
            for p in placebo
        ],
        "",
        "## pre_trend: months -12..-1 against the -24..-13 reference, joint Wald test",
        "",
        "| estimand | chi-square | p |",
        "|---|---|---|",
        *[f"| {t['estimand']} | {_fmt(t['chi2'], 1)} | {_fmt(t['p_value'], 3)} |" for t in trends],
        "",
    ]
    (RESULTS / "sensitivity.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
