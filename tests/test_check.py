"""`ld-spark check`: an extract folder against the contract, before anyone runs the job on it."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY_ROWS

from ld_spark import bronze, check
from ld_spark.contract import TABLES

BROKEN_DATES = 40  # of ndtms/modalities' 50 rows in the tiny extract: over half, so the folder is unusable


def records(raw: Path, table: str) -> int:
    """Data rows of the table's one file, as Python's csv module reads them (header left out)."""
    with (raw / table / "part-0.csv").open(newline="") as handle:
        return len(list(csv.reader(handle))) - 1


@pytest.fixture(scope="module")
def damaged(tiny, tmp_path_factory) -> Path:
    """The tiny extract with three faults: hmcts/hearings' file lacks its hearing_date column,
    40 of ndtms/modalities' MODST dates are unparseable, and ndtms/top's folder is empty."""
    raw = tmp_path_factory.mktemp("check") / "raw"
    shutil.copytree(tiny, raw)

    def rewrite(table: str, change) -> None:
        path = raw / table / "part-0.csv"
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        with path.open("w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(change(rows))

    def drop_hearing_date(rows):
        at = rows[0].index("hearing_date")
        return [r[:at] + r[at + 1 :] for r in rows]

    def break_dates(rows):
        at = rows[0].index("MODST")
        return [
            rows[0],
            *[r[:at] + ["31/31/2017"] + r[at + 1 :] for r in rows[1 : BROKEN_DATES + 1]],
            *rows[BROKEN_DATES + 1 :],
        ]

    rewrite("hmcts/hearings", drop_hearing_date)
    rewrite("ndtms/modalities", break_dates)
    (raw / "ndtms/top" / "part-0.csv").unlink()
    return raw


def test_a_clean_extract_is_usable_and_every_row_is_accounted_for(spark, tiny):
    found = check.examine(spark, tiny, max_quarantined_share=0.5)
    assert found.problems == []
    assert set(found.states) == set(TABLES)
    for table, counts in found.states.items():
        assert 0 < counts["read"] == records(tiny, table) <= TINY_ROWS, table
        assert sum(counts[s] for s in bronze.STATES) == counts["read"], table
    lines = check.report(found)
    assert lines[0].split() == ["table", "rows", *bronze.STATES]
    assert any(line.startswith("ndtms/modalities ") for line in lines)


def test_every_fault_is_named_and_the_rest_still_checked(spark, damaged):
    found = check.examine(spark, damaged, max_quarantined_share=0.5)
    assert len(found.problems) == 3, found.problems
    hearings, modalities, top = sorted(found.problems)
    assert hearings.startswith("table hmcts/hearings: file ") and hearings.endswith("lacks column hearing_date")
    quarantined = re.fullmatch(
        rf"table ndtms/modalities: (\d+) of {records(damaged, 'ndtms/modalities')} rows would be quarantined \(more than 50%\); see its rules above",
        modalities,
    )
    assert quarantined and int(quarantined[1]) >= BROKEN_DATES, modalities
    assert top.startswith("table ndtms/top: directory ") and top.endswith("holds no files")
    # The tables whose structure holds are still classified, the broken ones are not.
    assert set(found.states) == set(TABLES) - {"hmcts/hearings", "ndtms/top"}
    broken = [
        r
        for r in found.rules
        if (r["table"], r["rule"], r["column"]) == ("ndtms/modalities", "unparseable_date", "MODST")
    ]
    assert len(broken) == 1 and broken[0]["rows"] >= BROKEN_DATES
    assert any("unparseable_date:MODST" in line for line in check.report(found))
    # A looser limit lets the quarantine through; the structural faults stay.
    assert len(check.examine(spark, damaged, max_quarantined_share=0.9).problems) == 2


def test_the_command_exits_2_with_one_line_per_reason(damaged, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "ld_spark.cli", "check", "--raw", str(damaged), "--conf", "test"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    reasons = [line for line in done.stderr.splitlines() if line.startswith("ld-spark check: unusable: ")]
    assert len(reasons) == 3, done.stderr
    assert done.stdout.splitlines()[0].split() == ["table", "rows", *bronze.STATES]
    assert f"unusable: {damaged}" in done.stdout
    assert "WARN" not in done.stdout + done.stderr  # the JVM's output is in the log
    assert (tmp_path / "ld-spark-check.log").read_text().count("log4j") >= 1
