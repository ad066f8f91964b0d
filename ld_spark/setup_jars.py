"""`python -m ld_spark.setup_jars`: fetch and cache the Delta jars, and the s3a ones (hadoop-aws
and the AWS SDK bundle), run by `make setup`.

`python -m ld_spark.setup_jars --list` prints every jar a job needs (Delta and its dependencies
from the cache, and Splink's similarity functions from its wheel) as one comma-separated list,
for `spark-submit --jars`; `--list --s3a` adds hadoop-aws and the AWS SDK bundle.
"""

import sys

from ld_spark import config, session


def main(argv: list[str]) -> None:
    cfg = config.load()
    if argv[:1] == ["--resolve"]:
        session.resolve(cfg.spark, argv[1], argv[2])
        return
    listing = "--list" in argv
    jars = session.fetch_jars(cfg, object_store=not listing or "--s3a" in argv)
    if listing:
        # --s3a: hadoop-aws and the AWS SDK too, for a cluster whose image lacks them.
        s3a = session.object_store_jars(cfg.spark) if "--s3a" in argv else []
        print(",".join(str(j) for j in [*jars, *s3a, session.splink_jar()]))
    else:
        print("Delta jars cached:", ", ".join(j.name for j in jars))
        print("s3a jars cached:", ", ".join(j.name for j in session.object_store_jars(cfg.spark)))


if __name__ == "__main__":
    main(sys.argv[1:])
