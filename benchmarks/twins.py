"""Same-sex twins at one address: how many twin pairs does a run make one person?

    .venv/bin/python benchmarks/twins.py --raw RAW_DIR --out LABEL=OUT_DIR [LABEL=OUT_DIR ...]

RAW_DIR is a synthetic extract (its `_truth/`); each OUT_DIR a finished `ld-spark run` on it.
Twin pairs are the generator's people who share a date of birth, sex, surname and postcode
(generator.twins_share); a pair counts if both twins have an identity record in the extract. It
is one person if the person_key holding most of one twin's records holds most of the other's,
and it has some record with the other twin if any person_key holds records of both (a record
that matched both twins equally, given to the wrong one). Also: people found, and the run's
lowest pairwise precision over the sources (results/linkage_quality.csv, to 4 decimals). Prints
a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from ld_spark import catalog, io, session  # noqa: E402
from ld_spark import config as config_module  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--out", nargs="+", required=True, help="LABEL=OUT_DIR")
    args = parser.parse_args()

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    config = config_module.load("local")
    spark = session.build(config)
    identity = spark.read.csv(str(args.raw / "_truth" / "person_identity.csv"), header=True)
    twin_of = (
        identity.alias("a")
        .join(identity.alias("b"), on=["date_of_birth", "sex", "surname", "postcode"], how="inner")
        .filter(F.col("a.person_id") < F.col("b.person_id"))
        .select(F.col("a.person_id").alias("twin_a"), F.col("b.person_id").alias("twin_b"))
    )
    truth = spark.read.csv(str(catalog.file(args.raw, catalog.TRUTH_RECORD_PERSON)), header=True).select(
        "source_table", "record_key", "person_id"
    )
    print(
        "| run | people | twin pairs with records | one person | some record with the other twin | precision (min over sources) |"
    )
    print("|---|---|---|---|---|---|")
    for labelled in args.out:
        label, out = labelled.split("=", 1)
        linked = io.read_delta(spark, catalog.path(Path(out), catalog.RECORD_PERSON_IDENTITY))
        people_of = linked.join(truth, on=["source_table", "record_key"], how="inner").select("person_id", "person_key")
        counted = people_of.groupBy("person_id", "person_key").count()
        main = Window.partitionBy("person_id").orderBy(F.col("count").desc(), "person_key")
        keys = (
            counted.withColumn("_rank", F.row_number().over(main))
            .groupBy("person_id")
            .agg(F.collect_set("person_key").alias("keys"), F.min_by("person_key", "_rank").alias("main"))
        )
        pairs = (
            twin_of.join(keys.toDF("twin_a", "keys_a", "main_a"), on=["twin_a"], how="inner")
            .join(keys.toDF("twin_b", "keys_b", "main_b"), on=["twin_b"], how="inner")
            .cache()
        )
        present = pairs.count()
        crossing = pairs.filter(F.size(F.array_intersect("keys_a", "keys_b")) > 0).count()
        merged = pairs.filter(F.col("main_a") == F.col("main_b")).count()
        people = linked.select("person_key").distinct().count()
        with open(catalog.file(Path(out), ("results", "linkage_quality.csv"))) as f:
            precision = min(float(r["precision"]) for r in csv.DictReader(f) if r["precision"])
        print(f"| {label} | {people:,} | {present:,} | {merged:,} | {crossing:,} | {precision:.4f} |")
    spark.stop()


if __name__ == "__main__":
    main()
