"""What a command prints: one line per stage; the JVM's output and the libraries' logs in a file."""

from __future__ import annotations

import io as text_io
import logging
import re
import subprocess
import sys
import warnings

from ld_spark import catalog, console

SPARK_LOG_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (WARN|INFO|ERROR)\b", re.MULTILINE)
STAGES = ["landing", "bronze", "linkage", "series", "effects", "sensitivity", "release"]


def test_a_child_started_while_stderr_points_at_the_log_keeps_writing_there(tmp_path, capfd):
    log = tmp_path / "logs" / "run.log"
    console.log_header(log, "test")
    with console.stderr_to(log):
        # Stands for the JVM: started in the block, still writing after it.
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time; print('child early', file=sys.stderr); sys.stderr.flush();"
                " time.sleep(0.5); print('child late', file=sys.stderr)",
            ]
        )
    print("ours after", file=sys.stderr, flush=True)
    child.wait()
    text = log.read_text()
    assert "==== test started" in text and "child early" in text and "child late" in text
    err = capfd.readouterr().err
    assert "ours after" in err and "child" not in err


def test_library_logs_and_python_warnings_go_to_the_log_only(tmp_path, capfd):
    log = tmp_path / "run.log"
    names = ["", *console.LIBRARY_LOGGERS]
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    level = logging.getLogger().level
    try:
        console.python_logs_to(log)
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
        logging.getLogger("splink.internals").warning("a splink warning")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a python warning", UserWarning, stacklevel=1)
        for handler in logging.getLogger().handlers:
            handler.flush()
    finally:
        logging.captureWarnings(False)
        for n, (handlers, propagate) in saved.items():
            logging.getLogger(n).handlers, logging.getLogger(n).propagate = handlers, propagate
        logging.getLogger().setLevel(level)
    text = log.read_text()
    for said in ("Creating initial MLflow database tables", "a splink warning", "a python warning"):
        assert said in text, said
    captured = capfd.readouterr()
    assert "MLflow" not in captured.err + captured.out and "warning" not in captured.err + captured.out


def test_a_stage_is_one_line_with_its_seconds_and_notes():
    shown = text_io.StringIO()  # not a terminal: no live status line
    stages = console.Stages(out=shown)
    with stages.stage("linkage") as notes:
        notes.append("10 identity records")
        notes.append("4 people (duckdb)")
    with stages.stage("release"):
        pass
    lines = shown.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in shown.getvalue()
    assert re.fullmatch(r"linkage +\d+\.\d s   10 identity records; 4 people \(duckdb\)", lines[0]), lines[0]
    assert re.fullmatch(r"release +\d+\.\d s", lines[1]), lines[1]


def test_a_stage_that_fails_still_gets_its_line():
    shown = text_io.StringIO()
    try:
        with console.Stages(out=shown).stage("bronze") as notes:
            notes.append("half-way")
            raise RuntimeError("bad input")
    except RuntimeError:
        pass
    assert re.fullmatch(r"bronze +\d+\.\d s   half-way; stopped\n", shown.getvalue()), shown.getvalue()


def test_a_run_prints_one_line_per_stage_and_logs_the_rest(finished_run_printed):
    out, _, printed = finished_run_printed
    lines = printed.splitlines()
    assert len(lines) <= 40, printed
    assert not SPARK_LOG_LINE.search(printed), printed
    assert "log4j" not in printed and "INFO mlflow" not in printed, printed
    for stage in STAGES:
        assert sum(line.startswith(f"{stage} ") for line in lines) == 1, (stage, printed)
    log = catalog.file(out, catalog.LOG_FILE)
    assert f"log (Spark, MLflow, Splink): {log}" in lines
    logged = log.read_text()
    assert "==== ld-spark run started" in logged and "log4j" in logged  # the JVM's start-up lines
