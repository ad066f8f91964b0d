"""Splink scoring with last month's scores carried over, against scoring every pair again.

    .venv/bin/python benchmarks/scores.py --out data/bench_refresh/out_full_1.0

Takes the identity tuples of a finished run's bronze tables (OUT_DIR) and the model it saved.
"Last month" is those tuples but 1 in 13 (chosen by tuple id: the month's new identities, as
benchmarks/refresh.py's month 2 brings 1/13 of every file). On each Splink backend it times:
- last month scored in full with the model: the earlier scores;
- this month scored in full with the model: what a run without the earlier scores does;
- this month with last month's scores carried over (linkage.reuse_scores, ld_spark/link/model.py);
and checks that the last two give the same pairs with the same weights. Pairs are kept down to
match probability 0.80, as in a run with the sensitivity analyses. Each time includes counting
the pairs, so that Spark's lazy plans are run. Writes benchmarks/results/scores.md and prints it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from ld_spark import catalog, session  # noqa: E402
from ld_spark.config import load  # noqa: E402
from ld_spark.link import identity, model  # noqa: E402

MONTHS = 13
KEEP_FROM = 0.80


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a finished run's OUT_DIR (its bronze and saved model)")
    parser.add_argument("--backends", default="duckdb,spark")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    config = load()
    spark = session.build(config)
    bronze = {t: catalog.read(spark, out, catalog.bronze(t)) for t, _, _ in identity.SOURCES.values()}
    tuples = identity.identity_tuples(identity.records(bronze)).cache()
    new = f"pmod(conv(substr({identity.UNIQUE_ID}, 1, 8), 16, 10), {MONTHS}) = 0"
    last_month = tuples.filter(f"NOT ({new})").cache()
    n_tuples, n_new = tuples.count(), tuples.filter(new).count()
    last_month.count()
    model_in = catalog.file(out, catalog.MODEL_FILE)

    rows = []
    with tempfile.TemporaryDirectory() as work:

        def score(these, on: str, earlier=None) -> tuple[float, model.Scored, int]:
            started = time.time()
            scored = model.train_and_predict(
                spark, these, config.linkage, Path(work), model_in=model_in, on=on, keep_from=KEEP_FROM, earlier=earlier
            )
            pairs = scored.pairs.cache()
            n = pairs.count()
            return time.time() - started, scored._replace(pairs=pairs), n

        for on in args.backends.split(","):
            t_before, before, n_before = score(last_month, on)
            seen = last_month.select(identity.UNIQUE_ID, identity.content())
            earlier = model.Earlier(before.digest, KEEP_FROM, seen, before.pairs)
            t_whole, whole, n_whole = score(tuples, on)
            t_carried, carried, n_carried = score(tuples, on, earlier)
            same = sorted(tuple(r) for r in whole.pairs.collect()) == sorted(tuple(r) for r in carried.pairs.collect())
            if not same:
                sys.exit(f"{on}: carried-over scoring differs from a whole scoring")
            rows.append(
                (on, t_before, n_before, t_whole, n_whole, t_carried, carried.reused, n_carried - carried.reused)
            )
            print(rows[-1], flush=True)
            for s in (before, whole, carried):
                s.pairs.unpersist()

    lines = [
        "# Splink scoring: last month's scores carried over vs every pair scored again",
        "",
        f"`benchmarks/scores.py --out {args.out}` on {dt.date.today()}, {cpu()}, {os.cpu_count()} cores; "
        f"{n_tuples:,d} identity tuples, {n_new:,d} of them new this month (1 in {MONTHS} by tuple id); "
        f"pairs kept down to match probability {KEEP_FROM}. Times include counting the pairs.",
        "",
        "| backend | last month in full (s) | pairs | this month in full (s) | pairs | this month, carried over (s) "
        "| pairs carried | pairs scored | same pairs and weights |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for on, t_before, n_before, t_whole, n_whole, t_carried, reused, scored in rows:
        lines.append(
            f"| {on} | {t_before:.1f} | {n_before:,d} | {t_whole:.1f} | {n_whole:,d} | {t_carried:.1f} "
            f"| {reused:,d} | {scored:,d} | yes |"
        )
    text = "\n".join(lines) + "\n"
    (ROOT / "benchmarks/results/scores.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
