"""The benchmarks' memory sampler (benchmarks/proctree.py): what it counts in a process tree."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from proctree import kind_of_argv, tree_rss_by_kind  # noqa: E402

GIB = 2**30


def _by_kind(children, kinds, rss):
    return tree_rss_by_kind(1, children, kinds.__getitem__, rss.__getitem__)


def test_a_fork_of_the_jvm_is_not_counted_again():
    # python driver 1 -> JVM 2 -> the JVM forked to run a command (3), not yet replaced by it.
    children = {1: [2], 2: [3]}
    kinds = {1: "python", 2: "jvm", 3: "jvm"}
    rss = {1: GIB // 2, 2: 3 * GIB, 3: 3 * GIB}
    assert _by_kind(children, kinds, rss) == {"python": GIB // 2, "jvm": 3 * GIB}


def test_the_command_the_fork_became_and_every_worker_are_counted():
    # The fork once it runs its command (4, "other"); pyspark's daemon (5) and its forked workers
    # (6, 7): workers allocate on their own, so each counts, though forked from one process.
    children = {1: [2, 5], 2: [4], 5: [6, 7]}
    kinds = {1: "python", 2: "jvm", 4: "other", 5: "pyworker", 6: "pyworker", 7: "pyworker"}
    rss = {1: 100, 2: 3000, 4: 3, 5: 40, 6: 120, 7: 130}
    assert _by_kind(children, kinds, rss) == {"python": 100, "jvm": 3000, "other": 3, "pyworker": 290}


def test_a_jvm_started_by_python_is_counted():
    # Two JVMs side by side under the driver (not one forked from the other) both count.
    children = {1: [2, 3]}
    kinds = {1: "python", 2: "jvm", 3: "jvm"}
    rss = {1: 1, 2: 10, 3: 20}
    assert _by_kind(children, kinds, rss) == {"python": 1, "jvm": 30}


def test_a_jvm_a_command_of_the_jvm_started_is_counted():
    # JVM 2 -> a shell it ran (3) -> a JVM that shell started (4): exec'd, its own memory.
    children = {1: [2], 2: [3], 3: [4]}
    kinds = {1: "python", 2: "jvm", 3: "other", 4: "jvm"}
    rss = {1: 1, 2: 10, 3: 2, 4: 20}
    assert _by_kind(children, kinds, rss) == {"python": 1, "jvm": 30, "other": 2}


def test_kinds_from_the_command_line():
    assert kind_of_argv(["/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-cp", "x"]) == "jvm"
    # "java" elsewhere in the interpreter's path does not make it a JVM.
    venv_python = "/home/me/java-work/ld-spark/.venv/bin/python"
    assert kind_of_argv([venv_python, "/home/me/java-work/ld-spark/.venv/bin/ld-spark", "run"]) == "python"
    assert kind_of_argv([venv_python, "-m", "pyspark.daemon"]) == "pyworker"
    assert kind_of_argv(["/bin/sh", "-c", "chmod 644 f"]) == "other"
