"""The `ld-spark` command line (contract section 6), shared by the jobs/ entry points."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ld_spark import config as config_module


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ld-spark", description="L&D linked-data evaluation on Spark + Delta")
    sub = p.add_subparsers(dest="command", required=True)
    # Options every command takes, and the raw folder that run and check read.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", action="append", default=[], help="config overlay (name or path); repeatable")
    common.add_argument(
        "--verbose",
        action="store_true",
        help="Spark's, MLflow's and Splink's own output on the console (default: to a log file, see below)",
    )
    reads = argparse.ArgumentParser(add_help=False)
    reads.add_argument("--raw", help="raw root in the contract layout (default: the config's paths.raw)")

    gen = sub.add_parser("generate", parents=[common], help="write synthetic national extracts in the contract layout")
    gen.add_argument("--scale", type=float, default=0.1, help="1 = evaluation-sized (~200,000 people)")
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", required=True, help="raw root to write")
    gen.add_argument("--partitions", type=int, default=None, help="Spark partitions (rows do not depend on it)")
    gen.add_argument(
        "--shape",
        choices=["plain", "realistic"],
        default="plain",
        help="plain: the original synthetic shape; realistic: cut-off extract with open cases, "
        "historic index offences before their arrest, long custodial Crown cases, "
        "uncharged police contacts, custody taking people out (conf/shape_realistic.yaml)",
    )

    run = sub.add_parser("run", parents=[reads, common], help="every stage, raw extracts to results")
    run.add_argument("--out", help="output root, Delta tables and results/ (default: the config's paths.out)")
    sub.add_parser(
        "check", parents=[reads, common], help="an extract folder against the contract, without running the job"
    )
    forget = sub.add_parser(
        "forget",
        parents=[common],
        help="national data opt-out: erase the people these NHS numbers identify from every layer of OUT_DIR",
    )
    forget.add_argument(
        "--nhs-numbers", required=True, help="a file of NHS numbers, one per line (a first line nhs_number is skipped)"
    )
    forget.add_argument("--out", help="output root (default: the config's paths.out)")
    return p


def _load_config(overlays: list[str]) -> config_module.Config:
    return config_module.load(*(overlays or ["local"]))


def cmd_generate(args: argparse.Namespace) -> int:
    from ld_spark.synth.generate import generate

    overlays = args.conf or ["local"]
    cfg = _load_config(overlays + (["shape_realistic"] if args.shape == "realistic" else []))
    # Beside the extract, not in it: generation replaces the whole folder.
    raw = Path(args.out)
    log = None if args.verbose else raw.with_name(raw.name + ".generate.log")
    spark = _session(cfg, log, "ld-spark generate")
    started = time.time()
    counts = generate(spark, cfg.generator, seed=args.seed, scale=args.scale, out=args.out, partitions=args.partitions)
    elapsed = time.time() - started
    if args.verbose:
        width = max(len(t) for t in counts)
        for table, n in counts.items():
            print(f"  {table:<{width}}  {n:>10,d} rows")
    print(
        f"generated {sum(counts.values()):,d} rows at scale {args.scale} seed {args.seed} "
        f"in {elapsed:.1f}s on {spark.sparkContext.master} -> {args.out}" + (f" (log: {log})" if log else "")
    )
    return 0


def _session(cfg: config_module.Config, log: Path | None, command: str, raw: str | None = None):
    """The SparkSession, with the JVM's output and the libraries' logs in `log` (None: verbose,
    everything on the console, Spark's progress bars too); `raw`, the extract it will read (it
    sizes the heap when `spark.driver_memory` is `auto`)."""
    from ld_spark import console, session

    if log is None:
        verbose = cfg.model_copy(update={"spark": cfg.spark.model_copy(update={"console_progress": True})})
        return session.build(verbose, raw)
    console.log_header(log, command)
    with console.stderr_to(log):
        spark = session.build(cfg, raw)
    console.python_logs_to(log)
    return spark


def cmd_run(args: argparse.Namespace) -> int:
    import tempfile

    from ld_spark import catalog, console, fs, pipeline

    cfg = _load_config(args.conf)
    out = args.out or cfg.paths.out
    # The JVM writes its log to a local file: under OUT_DIR when that is a folder, else the
    # temporary folder (an object store has no file to append to).
    beside = Path(tempfile.gettempdir()) / f"ld-spark-{os.getpid()}" if fs.is_url(out) else out
    log = None if args.verbose else catalog.file(beside, catalog.LOG_FILE)
    raw = args.raw or cfg.paths.raw
    spark = _session(cfg, log, "ld-spark run", raw)
    done = pipeline.run(spark, cfg, raw=raw, out=out, stages=console.Stages(console.spark_progress(spark)))
    if log is not None:
        print(f"log (Spark, MLflow, Splink): {log}")
    return done


def cmd_check(args: argparse.Namespace) -> int:
    import tempfile

    from ld_spark import check

    cfg = _load_config(args.conf)
    raw = args.raw or cfg.paths.raw
    # The extract's folder may be read-only: the JVM's log goes to the temporary folder.
    log = None if args.verbose else Path(tempfile.gettempdir()) / "ld-spark-check.log"
    spark = _session(cfg, log, f"ld-spark check --raw {raw}", raw)
    found = check.examine(spark, raw, cfg.check.max_quarantined_share)
    print("\n".join(check.report(found)))
    for problem in found.problems:
        print(f"ld-spark check: unusable: {problem}", file=sys.stderr)
    print(("unusable" if found.problems else "usable") + f": {raw}" + (f" (log: {log})" if log else ""))
    return 2 if found.problems else 0


def cmd_forget(args: argparse.Namespace) -> int:
    import tempfile

    from ld_spark import catalog, erase, fs, link, lock
    from ld_spark.errors import InputError

    cfg = _load_config(args.conf)
    out = args.out or cfg.paths.out
    linked = catalog.path(out, catalog.RECORD_PERSON_IDENTITY)
    if not fs.exists(linked):
        raise InputError(f"{out}: no run to erase from ({linked} is missing)")
    if not fs.exists(args.nhs_numbers):
        raise InputError(f"{args.nhs_numbers}: no such file of NHS numbers")
    numbers = erase.request_numbers(fs.read_text(args.nhs_numbers), args.nhs_numbers)
    log = None if args.verbose else Path(tempfile.gettempdir()) / f"ld-spark-forget-{os.getpid()}.log"
    spark = _session(cfg, log, "ld-spark forget")
    # Never a new key here: hashes under a new key would match no one the runs linked.
    linkage = cfg.linkage.model_copy(update={"create_key_if_missing": False})
    key = link.key.load_key(linkage, link.key.key_path(linkage), spark.sparkContext.master)
    with lock.exclusive(out, cfg.paths.lock_lease_seconds):
        catalog.unnested(spark, fs.resolve(out))  # an older OUT_DIR's layout first, as a run does
        erased, new = erase.forget(spark, fs.resolve(out), numbers, key, cfg.spark.concurrent_tables)
    print(
        f"forgot {len(numbers)} NHS number(s) ({new} new to the opt-out register): {erased.people} people, "
        f"{erased.records} linked records, {sum(erased.rows.values())} rows in {len(erased.rows)} tables, "
        f"vacuumed; the next run excludes them" + (f" (log: {log})" if log else "")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = {"generate": cmd_generate, "run": cmd_run, "check": cmd_check, "forget": cmd_forget}[args.command]
    try:
        return handler(args)
    except pipeline_errors() as err:  # a clear one-line reason, no traceback
        print(f"ld-spark: error: {err}", file=sys.stderr)
        return 2


def pipeline_errors() -> tuple[type[BaseException], ...]:
    from ld_spark.errors import InputError, OutputBusy

    return (InputError, OutputBusy)


if __name__ == "__main__":
    sys.exit(main())
