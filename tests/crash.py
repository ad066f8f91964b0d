"""A run killed mid-write, a run refused while it holds the output, and a rerun that completes.

The scenario of tests/test_reliability.py, run once per session by conftest's `killed_and_rerun`
fixture (the rerun is also the second run the MLflow comparison and the compare notebook need).
It records what it saw; the tests assert on the record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from conftest import delta_tables

from ld_spark import io, lock, pipeline

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Crash:
    before: dict  # table contents of the finished run
    versions: dict  # table -> Delta version, before
    refused: subprocess.CompletedProcess  # the run started while the first held the output
    first_pid: int
    first_returncode: int
    caught_mid_write: bool  # data files on disk that no commit refers to, when the kill came
    after_kill: dict  # table contents after the kill
    versions_after_kill: dict
    rerun_exit: int
    after_rerun: dict  # table contents after the rerun


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
    lock_file = out / lock.LOCK_FILE
    return lock_file.read_text() if lock_file.exists() else ""


def start_run(raw: Path, out: Path, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ld_spark.cli", "run", "--raw", str(raw), "--out", str(out), "--conf", "test"],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_mid_write_then_rerun(spark, run_config, raw: Path, out: Path, work: Path, before: dict, contents) -> Crash:
    """On a finished run's output (whose table contents are `before`): start `ld-spark run` as a
    process, start a second one while the first holds the output, SIGKILL the first while a table
    has uncommitted data files, then rerun in this process. contents(out): the order-free content
    of every table (conftest.table_contents)."""
    versions = {t: io.delta_version(t) for t in delta_tables(out)}
    existing = data_files(out)
    env = {**os.environ, "MLFLOW_TRACKING_URI": run_config.mlflow.tracking_uri, "PYTHONPATH": str(REPO)}
    log = work / "first.log"
    first = start_run(raw, out, env, log)
    try:
        deadline = time.time() + 300
        while f"run pid {first.pid} " not in holder(out):
            assert first.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.2)
        refused = subprocess.run(
            [sys.executable, "-m", "ld_spark.cli", "run", "--raw", str(raw), "--out", str(out), "--conf", "test"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        while not uncommitted(out, existing):
            assert first.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    caught = bool(uncommitted(out, existing))
    after_kill, versions_after_kill = contents(out), {t: io.delta_version(t) for t in delta_tables(out)}
    rerun_exit = pipeline.run(spark, run_config, raw=str(raw), out=str(out))
    return Crash(
        before,
        versions,
        refused,
        first.pid,
        first.returncode,
        caught,
        after_kill,
        versions_after_kill,
        rerun_exit,
        contents(out),
    )
