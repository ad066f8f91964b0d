"""Blocking: the pairs each prediction rule makes, counted and held to a budget before Splink runs.

A rule pairs the identity tuples that agree on all its keys (a null key pairs nothing), so a
block of n tuples makes n(n-1)/2 comparisons. A key with few values (date of birth and sex:
about 44,000 blocks whatever the population) makes comparisons grow with the square of the
records; a national extract then asks Splink for more pairs than any cluster can score. The run
counts every rule's comparisons first (one Spark job, a group-by per rule) and stops with one
line naming the rule when one is over `linkage.max_comparisons_per_rule`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.errors import InputError
from ld_spark.frames import union_all

# Splink's blocking_rules_to_generate_predictions (model.splink_settings), as the columns each
# rule requires to be equal. Each pairs only records that agree on something specific.
PREDICTION_RULES: tuple[tuple[str, ...], ...] = (
    ("nhs",),
    ("pnc",),
    ("dob", "sex"),
    ("forename", "surname"),
    ("postcode", "sex"),
)
COLUMNS = ["rule", "comparisons", "blocks", "largest_block"]


def rule_name(keys: tuple[str, ...]) -> str:
    return "-".join(keys)  # a name MLflow takes in a metric key


def comparisons(tuples: DataFrame, rules: tuple[tuple[str, ...], ...] = PREDICTION_RULES) -> list[dict]:
    """One row per rule, in the rules' order: the comparisons it makes, its blocks (key values
    held by at least one tuple) and the tuples in its largest block. No key value is kept."""
    sizes = union_all(
        tuples.filter(" AND ".join(f"`{k}` IS NOT NULL" for k in keys))
        .groupBy(*keys)
        .count()
        .select(F.lit(rule_name(keys)).alias("rule"), F.col("count").alias("n"))
        for keys in rules
    )
    rows = {
        r["rule"]: r.asDict()
        for r in sizes.groupBy("rule")
        .agg(
            F.expr("sum(n * (n - 1) div 2)").alias("comparisons"),
            F.count("*").alias("blocks"),
            F.max("n").alias("largest_block"),
        )
        .collect()
    }
    empty = {"comparisons": 0, "blocks": 0, "largest_block": 0}
    return [{"rule": rule_name(keys), **{**empty, **rows.get(rule_name(keys), {})}} for keys in rules]


def check_budget(counted: list[dict], budget: int) -> None:
    """InputError naming the first rule whose comparisons are over the budget."""
    for row in counted:
        if row["comparisons"] > budget:
            raise InputError(
                f"linkage: blocking rule {row['rule']} makes {row['comparisons']:,} comparisons (largest block "
                f"{row['largest_block']:,} identity tuples), over linkage.max_comparisons_per_rule {budget:,}: "
                "add a key to the rule, or raise the budget if the cluster can score that many pairs"
            )
