"""Crashes and concurrent runs: `ld-spark run` as a separate process, killed mid-write.

The run's output is the session's finished run (the scenario is tests/crash.py, run once by the
`killed_and_rerun` fixture). A second `ld-spark run` is started on it as a real process; while it
works, a third is started on the same output and must stop at once with one line. The second is
then killed (SIGKILL, its JVM with it) while a Delta table has data files written but not
committed. Every table must still read, with the content it had; a rerun must complete (the
kernel dropped the dead run's lock) and leave the same content again: a rerun overwrites, it
never appends.
"""

from __future__ import annotations

import signal

from ld_spark import catalog


def test_killed_mid_write_tables_keep_their_content_a_second_run_is_refused_and_a_rerun_completes(
    finished_run, killed_and_rerun
):
    out, _ = finished_run
    crash = killed_and_rerun
    versions = set(catalog.versions(out))
    assert set(crash.before) >= versions >= {f"{t.layer}/{t.name}" for t in catalog.tables()}
    # A second run on the same output while the first holds it: refused at once, one line.
    assert crash.refused.returncode == 2
    assert (
        crash.refused.stderr.strip()
        .splitlines()[-1]
        .startswith(f"ld-spark: error: output {out} is in use by run pid {crash.first_pid}")
    )
    # The first was killed in the middle of a table write: data files on disk, no commit yet.
    assert crash.first_returncode == -signal.SIGKILL
    assert crash.caught_mid_write, "the kill came after the write committed"
    # Every table reads, at its previous version or at a complete new one with the same content.
    assert crash.after_kill == crash.before
    assert all(crash.versions_after_kill[t] >= v for t, v in crash.versions.items())
    # The dead run's lock went with it; a rerun completes and leaves the same content.
    assert crash.rerun_exit == 0
    assert crash.after_rerun == crash.before
