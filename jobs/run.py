"""spark-submit entry point: `spark-submit jobs/run.py --raw DIR --out DIR [--conf cluster]`."""

import sys

import _bootstrap  # noqa: F401

from ld_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
