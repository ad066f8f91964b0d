"""The sensitivity suite (sensitivity.suite) with 1 and with 2 worker threads, on a finished run.

    .venv/bin/python benchmarks/suite_workers.py OUT_DIR

Reads the run's panel, offences and court_cases (cached), imports statsmodels once, then times
the suite twice at each worker count, alternating, and checks the rows are identical.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ld_spark import catalog, io, sensitivity, session  # noqa: E402
from ld_spark import config as config_module  # noqa: E402


def main() -> None:
    import statsmodels.api  # noqa: F401 (imported once, outside the timings)

    config = config_module.load("local")
    spark = session.build(config)
    out = Path(sys.argv[1])
    tables = sensitivity.Tables(
        *(
            io.read_delta(spark, catalog.path(out, t)).cache()
            for t in (catalog.PANEL, catalog.OFFENCES, catalog.COURT_CASES)
        )
    )
    for df in tables:
        df.count()
    results: dict[int, list[dict]] = {}
    for workers in (1, 2, 1, 2):
        started = time.time()
        rows = sensitivity.suite(tables, config.analysis, config.economics, workers)
        print(f"workers {workers}: {time.time() - started:.1f} s, {len(rows)} rows", flush=True)
        results.setdefault(workers, rows)
    print("identical rows:", results[1] == results[2])


if __name__ == "__main__":
    main()
