"""`python -m ld_spark.setup_jars`: fetch and cache the Delta jars (run by `make setup`).

`python -m ld_spark.setup_jars --list` prints every jar a job needs (Delta and its dependencies
from the cache, and Splink's similarity functions from its wheel) as one comma-separated list,
for `spark-submit --jars`.
"""

import sys

from ld_spark import config, session


def main(argv: list[str]) -> None:
    cfg = config.load()
    jars = session.fetch_jars(cfg)
    if "--list" in argv:
        print(",".join(str(j) for j in [*jars, session.splink_jar()]))
    else:
        print("Delta jars cached:", ", ".join(j.name for j in jars))


if __name__ == "__main__":
    main(sys.argv[1:])
