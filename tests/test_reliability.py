"""Crashes and concurrent runs: `ld-spark run` as a separate process, killed mid-write.

The run's output is the session's finished run. A second `ld-spark run` is started on it as a
real process; while it works, a third is started on the same output and must stop at once with
one line. The second is then killed (SIGKILL, its JVM with it) while a Delta table has data
files written but not committed. Every table must still read, with the content it had; a rerun
must complete (the kernel dropped the dead run's lock) and leave the same content again.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

from conftest import delta_tables, table_contents
from ld_spark import io, pipeline

REPO = Path(__file__).resolve().parents[1]


def committed_files(table: Path) -> set[str]:
    """Data files any commit of the table's log has added."""
    files = set()
    for entry in (table / "_delta_log").glob("*.json"):
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files.add(unquote(action["add"]["path"]))  # the log holds URI-encoded paths
    return files


def data_files(out: Path) -> set[Path]:
    return set(out.rglob("*.parquet")) - set(out.rglob("_delta_log/**/*.parquet"))


def holds_rows(path: Path) -> bool:
    """True for a data file with rows, or one still being written (no footer yet). Spark also
    writes empty files for empty partitions, which Delta never commits: those are not a write."""
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows > 0
    except Exception:
        return True


def uncommitted(out: Path, before: set[Path]) -> list[Path]:
    """Data files written since `before` that no commit refers to: a write in progress."""
    found = []
    for table in delta_tables(out):
        try:
            known = committed_files(table)
        except (json.JSONDecodeError, FileNotFoundError):
            continue  # a commit file being written as we look
        found += [p for p in data_files(table) - before if str(p.relative_to(table)) not in known and holds_rows(p)]
    return found


def holder(out: Path) -> str:
    """What the output's lock file says (who holds it, or held it last)."""
    lock = out / io.LOCK_FILE
    return lock.read_text() if lock.exists() else ""


def start_run(raw: Path, out: Path, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ld_spark.cli", "run", "--raw", str(raw), "--out", str(out),
                             "--conf", "test"], cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_killed_mid_write_tables_keep_their_content_a_second_run_is_refused_and_a_rerun_completes(
        spark, run_config, finished_run, small_extract, tmp_path):
    raw, _ = small_extract
    out, _ = finished_run
    before = table_contents(spark, out)
    versions = {t: io.delta_version(t) for t in delta_tables(out)}
    existing = data_files(out)
    env = {**os.environ, "MLFLOW_TRACKING_URI": run_config.mlflow.tracking_uri, "PYTHONPATH": str(REPO)}

    first = start_run(raw, out, env, tmp_path / "first.log")
    try:
        deadline = time.time() + 300
        while f"run pid {first.pid} " not in holder(out):
            assert first.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.2)
        # A second run on the same output while the first holds it: refused at once, one line.
        second = subprocess.run([sys.executable, "-m", "ld_spark.cli", "run", "--raw", str(raw), "--out", str(out),
                                 "--conf", "test"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines()[-1].startswith(f"ld-spark: error: output {out} is in use by run pid {first.pid}")
        # Kill the first in the middle of a table write: data files on disk, no commit yet.
        while not uncommitted(out, existing):
            assert first.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    assert uncommitted(out, existing), "the kill came after the write committed"

    # Every table reads, at its previous version or at a complete new one with the same content.
    assert table_contents(spark, out) == before
    after_kill = {t: io.delta_version(t) for t in delta_tables(out)}
    assert all(after_kill[t] >= v for t, v in versions.items())

    # The dead run's lock went with it; a rerun completes and leaves the same content.
    assert pipeline.run(spark, run_config, raw=str(raw), out=str(out)) == 0
    assert table_contents(spark, out) == before
