"""What a command prints: one line per stage, everything else to a log file.

A default `ld-spark run` prints each stage as it finishes (its seconds and what it made), the
warnings a user can act on, and where the results, the log and the MLflow run are. What the JVM
writes (Spark's WARN lines, Delta's, Ivy's, the JDK's), MLflow's, Py4J's and Splink's loggers
and Python's warnings go to OUT_DIR/logs/ld-spark.log instead. `--verbose` leaves them on the
console as before.

The JVM is a child of this process when Spark runs locally, so it writes to whatever this
process's stderr was when it started: pointing file descriptor 2 at the log while the session is
built sends all of it there, for good, while Python's own stderr is put back for our messages.
Under spark-submit the JVM starts first and its log4j configuration decides.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Python loggers whose INFO lines are the libraries' business, not the user's.
LIBRARY_LOGGERS = ("mlflow", "alembic", "py4j", "splink", "urllib3", "sqlalchemy")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_header(log: Path, command: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"\n==== {command} started {dt.datetime.now().isoformat(timespec='seconds')} ====\n")


@contextlib.contextmanager
def stderr_to(log: Path | None) -> Iterator[None]:
    """While the block runs, file descriptor 2 is `log` (appended): a child process started in
    the block (the JVM) keeps writing there after it; this process's stderr is put back after."""
    if log is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with log.open("a") as f:
            os.dup2(f.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def python_logs_to(log: Path | None) -> None:
    """Library loggers and Python warnings to `log` only (None: leave them on the console).
    MLflow adds its own console handler when imported, so it is imported first and replaced."""
    if log is None:
        return
    import mlflow  # noqa: F401  (its import configures the "mlflow" logger; replaced below)

    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


class Stages:
    """One line per stage: `name  seconds  what it made`. On a terminal the line shows the
    seconds and Spark's running tasks while the stage runs; elsewhere only the finished line."""

    def __init__(self, progress: Callable[[], str] | None = None, out=None, width: int = 12):
        self.progress, self.out, self.width = progress, out or sys.stdout, width
        self.live = hasattr(self.out, "isatty") and self.out.isatty()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        """Yields a list: what the stage appends is printed after its seconds."""
        notes: list[str] = []
        started = time.time()
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(name, started, stop), daemon=True)
        if self.live:
            ticker.start()
        try:
            yield notes
        except BaseException:
            notes.append("stopped")
            raise
        finally:
            stop.set()
            if self.live:
                ticker.join()
            self.line(name, time.time() - started, notes)

    def line(self, name: str, seconds: float, notes: list[str]) -> None:
        clear = "\r\033[K" if self.live else ""
        text = f"{name:<{self.width}} {seconds:7.1f} s" + (f"   {'; '.join(notes)}" if notes else "")
        print(clear + text, file=self.out, flush=True)

    def _tick(self, name: str, started: float, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            status = ""
            if self.progress is not None:
                with contextlib.suppress(Exception):  # the status is a courtesy; never fail a stage on it
                    status = self.progress()
            print(f"\r\033[K{name:<{self.width}} {time.time() - started:7.0f} s   {status}", end="", file=self.out)
            self.out.flush()


def spark_progress(spark) -> Callable[[], str]:
    """Spark's running stages as `tasks done/all` (no Spark job; the status tracker's own data)."""
    tracker = spark.sparkContext.statusTracker()

    def status() -> str:
        stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
        stages = [s for s in stages if s is not None]
        if not stages:
            return ""
        done, total = sum(s.numCompletedTasks for s in stages), sum(s.numTasks for s in stages)
        return f"Spark tasks {done}/{total}"

    return status
