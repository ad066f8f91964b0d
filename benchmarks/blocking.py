"""Comparisons per prediction blocking rule as the population grows, and the national estimate.

    .venv/bin/python benchmarks/blocking.py --scales 0.25 1 2 --work /tmp/blocking

For each scale: a synthetic extract (seed 1), landed and typed as `ld-spark run` does, its
identity tuples (link.identity), and each rule's comparisons, blocks and largest block
(link.blocking.comparisons, the counts the run checks against linkage.max_comparisons_per_rule).
Each rule's growth is fitted as comparisons ~ scale^b between the two largest scales and carried
to scale 300 (England: tens of millions of people). Writes benchmarks/results/blocking.csv and
blocking.md.

The carry-over is an estimate: a key whose values run out (a birth date and sex: about 44,000
blocks at any size) grows with the square of the people, a key with as many values as people
(an NHS number) grows with them, and a key in between (names, postcodes) drifts from one to the
other as its values fill up, so its exponent between small scales understates it.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from ld_spark import catalog, io, link, pipeline, session  # noqa: E402
from ld_spark import config as config_module  # noqa: E402
from ld_spark.contract import TABLES  # noqa: E402
from ld_spark.synth.generate import generate  # noqa: E402

NATIONAL_SCALE = 300
RESULTS = ROOT / "benchmarks" / "results"


def counted_at(spark, config, scale: float, work: Path) -> tuple[int, list[dict]]:
    """(identity tuples, blocking.comparisons rows) of a fresh extract at `scale`."""
    import mlflow

    raw, out = work / f"raw_{scale}", work / f"out_{scale}"
    if not catalog.file(out, catalog.RECONCILIATION_FILE).exists():  # bronze of an earlier call is reused
        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        generate(spark, config.generator, seed=1, scale=scale, out=raw)
        layouts = {table: io.check_columns(spark, raw, table) for table in TABLES}
        mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
        with mlflow.start_run(run_name=f"blocking benchmark {scale}"):
            job = pipeline.Job(spark, config, raw, out)
            job.landing(layouts)
            job.bronze_stage(layouts, "benchmark")
    bronze = {
        t: io.read_delta(spark, catalog.path(out, catalog.bronze(t))) for t, _, _ in link.identity.SOURCES.values()
    }
    tuples = link.identity.identity_tuples(link.identity.records(bronze)).cache()
    n = tuples.count()
    rows = link.blocking.comparisons(tuples)
    tuples.unpersist()
    return n, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.25, 1.0, 2.0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/ld_spark_blocking"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    config = config_module.load("local")
    spark = session.build(config)
    measured = {scale: counted_at(spark, config, scale, args.work) for scale in sorted(args.scales)}

    rows = []
    for scale, (tuples, counted) in measured.items():
        rows += [{"scale": scale, "identity_tuples": tuples, **r} for r in counted]
    small, large = sorted(measured)[-2:]
    budget = config.linkage.max_comparisons_per_rule
    national = []
    for before, after in zip(measured[small][1], measured[large][1]):
        exponent = math.log(max(after["comparisons"], 1) / max(before["comparisons"], 1)) / math.log(large / small)
        estimate = after["comparisons"] * (NATIONAL_SCALE / large) ** exponent
        national.append({"rule": after["rule"], "exponent": round(exponent, 2), "national": estimate})
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "blocking.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["scale", "identity_tuples", *link.blocking.COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Comparisons per prediction blocking rule (benchmarks/blocking.py)",
        "",
        f"Synthetic extracts, seed 1; the budget is linkage.max_comparisons_per_rule = {budget:,}.",
        "",
        "| scale | identity tuples | rule | comparisons | blocks | largest block |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['scale']} | {r['identity_tuples']:,} | {r['rule']} | {r['comparisons']:,} | {r['blocks']:,} "
            f"| {r['largest_block']:,} |"
            for r in rows
        ],
        "",
        f"Growth fitted between scales {small} and {large}, carried to scale {NATIONAL_SCALE}:",
        "",
        "| rule | exponent | comparisons at national scale | within the budget |",
        "|---|---|---|---|",
        *[
            f"| {r['rule']} | {r['exponent']} | {r['national']:.2g} | {'yes' if r['national'] <= budget else '**no**'} |"
            for r in national
        ],
        "",
    ]
    (RESULTS / "blocking.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
