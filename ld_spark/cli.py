"""The `ld-spark` command line (contract section 6), shared by the jobs/ entry points."""

from __future__ import annotations

import argparse
import sys
import time

from ld_spark import config as config_module


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ld-spark", description="L&D linked-data evaluation on Spark + Delta")
    sub = p.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic national extracts in the contract layout")
    gen.add_argument("--scale", type=float, default=0.1, help="1 = evaluation-sized (~200,000 people)")
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", required=True, help="raw root to write")
    gen.add_argument("--partitions", type=int, default=None, help="Spark partitions (rows do not depend on it)")
    gen.add_argument("--conf", action="append", default=[], help="config overlay (name or path); repeatable")
    gen.add_argument(
        "--shape",
        choices=["plain", "realistic"],
        default="plain",
        help="plain: the original synthetic shape; realistic: cut-off extract with open cases, "
        "historic index offences before their arrest, long custodial Crown cases, "
        "uncharged police contacts, custody taking people out (conf/shape_realistic.yaml)",
    )

    run = sub.add_parser("run", help="every stage, raw extracts to results")
    run.add_argument("--raw", help="raw root in the contract layout (default: the config's paths.raw)")
    run.add_argument("--out", help="output root, Delta tables and results/ (default: the config's paths.out)")
    run.add_argument("--conf", action="append", default=[], help="config overlay (name or path); repeatable")
    return p


def _load_config(overlays: list[str]) -> config_module.Config:
    return config_module.load(*(overlays or ["local"]))


def cmd_generate(args: argparse.Namespace) -> int:
    from ld_spark import session
    from ld_spark.synth.generate import generate

    overlays = args.conf or ["local"]
    cfg = _load_config(overlays + (["shape_realistic"] if args.shape == "realistic" else []))
    spark = session.build(cfg)
    started = time.time()
    counts = generate(spark, cfg.generator, seed=args.seed, scale=args.scale, out=args.out, partitions=args.partitions)
    elapsed = time.time() - started
    width = max(len(t) for t in counts)
    for table, n in counts.items():
        print(f"  {table:<{width}}  {n:>10,d} rows")
    print(
        f"generated {sum(counts.values()):,d} rows at scale {args.scale} seed {args.seed} "
        f"in {elapsed:.1f}s on {spark.sparkContext.master} -> {args.out}"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ld_spark import pipeline, session

    cfg = _load_config(args.conf)
    spark = session.build(cfg)
    return pipeline.run(spark, cfg, raw=args.raw or cfg.paths.raw, out=args.out or cfg.paths.out)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = {"generate": cmd_generate, "run": cmd_run}[args.command]
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
