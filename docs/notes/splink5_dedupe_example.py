"""Splink 5.0.0 + PySpark 4.0.1: dedupe_only on ~2,000 synthetic person records.

Run: /tmp/tv/bin/python dedupe_spark.py [--no-jar]
"""
import logging
import sys

from common import get_spark, timed, TIMINGS
import synth

import splink.comparison_library as cl
from splink import Linker, SettingsCreator, block_on
from splink.backends.spark import SparkAPI

USE_JAR = "--no-jar" not in sys.argv

with timed("spark session start"):
    spark = get_spark(with_splink_jar=USE_JAR)

with timed("make input spark df"):
    sdf = spark.createDataFrame(synth.make_dedupe_records(2000, seed=1))
    sdf = sdf.cache()
    sdf.count()

with timed("SparkAPI()"):
    db_api = SparkAPI(
        spark_session=spark,
        break_lineage_method="parquet",        # default outside Databricks; needs checkpoint dir
        num_partitions_on_repartition=4,       # default = ceil(shuffle.partitions/2)
        register_udfs_automatically=USE_JAR,   # registers jaro_winkler, jaro_sim, ... from jar
    )

if USE_JAR:
    first_name_cmp = cl.NameComparison("first_name").configure(term_frequency_adjustments=True)
    surname_cmp = cl.NameComparison("surname").configure(term_frequency_adjustments=True)
else:
    # jar-free: Spark built-in levenshtein() only
    first_name_cmp = cl.LevenshteinAtThresholds("first_name", [1, 2]).configure(term_frequency_adjustments=True)
    surname_cmp = cl.LevenshteinAtThresholds("surname", [1, 2]).configure(term_frequency_adjustments=True)

settings = SettingsCreator(
    link_type="dedupe_only",
    unique_id_column_name="unique_id",
    comparisons=[
        first_name_cmp,
        surname_cmp,
        cl.DateOfBirthComparison("dob", input_is_string=True),  # uses levenshtein + try_to_timestamp
        cl.PostcodeComparison("postcode"),
        cl.ExactMatch("nhs_number"),
    ],
    blocking_rules_to_generate_predictions=[
        block_on("first_name", "surname"),
        block_on("dob"),
        block_on("nhs_number"),
        block_on("postcode"),
    ],
    retain_intermediate_calculation_columns=False,
    additional_columns_to_retain=["true_person_id"],
)

with timed("register + Linker()"):
    df = db_api.register(sdf, dataset_display_name="people")   # Splink 5: must register first
    linker = Linker(df, settings, log_level=logging.WARNING)

with timed("estimate_probability_two_random_records_match"):
    linker.training.estimate_probability_two_random_records_match(
        [block_on("nhs_number"), block_on("first_name", "surname", "dob")], recall=0.7
    )

with timed("estimate_u_using_random_sampling"):
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=42)

with timed("EM block_on(first_name, surname)"):
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("first_name", "surname")
    )
with timed("EM block_on(dob)"):
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))

with timed("predict(threshold_match_probability=0.5)"):
    df_predict = linker.inference.predict(threshold_match_probability=0.5)
    n_pairs = df_predict.as_spark_dataframe().count()
print("pairs >= 0.5:", n_pairs)

with timed("cluster_pairwise_predictions_at_threshold(0.95)"):
    df_clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        df_predict, threshold_match_probability=0.95
    )
    clusters_sdf = df_clusters.as_spark_dataframe()          # pyspark.sql.DataFrame
    result = clusters_sdf.select("unique_id", "cluster_id")
    result.count()

print(type(result))
result.show(5)
print("n records:", result.count(), " n clusters:", result.select("cluster_id").distinct().count(),
      " true persons:", sdf.select("true_person_id").distinct().count())

# crude pairwise precision/recall vs truth
from pyspark.sql import functions as F
c = clusters_sdf.select("unique_id", "cluster_id", "true_person_id")
a, b = c.alias("a"), c.alias("b")
pairs = a.join(b, F.col("a.unique_id") < F.col("b.unique_id"))
tp = pairs.filter("a.cluster_id = b.cluster_id and a.true_person_id = b.true_person_id").count()
pred = pairs.filter("a.cluster_id = b.cluster_id").count()
true = pairs.filter("a.true_person_id = b.true_person_id").count()
print(f"pairwise precision={tp/pred:.3f} recall={tp/true:.3f} (pred={pred}, true={true})")

with timed("save_model_to_json"):
    model = linker.misc.save_model_to_json("/tmp/splink_research/model_dedupe.json", overwrite=True)

# reload model into a fresh Linker and predict again (no training)
with timed("reload model + predict + cluster"):
    db_api2 = SparkAPI(spark_session=spark, num_partitions_on_repartition=4,
                       register_udfs_automatically=USE_JAR)
    df2 = db_api2.register(sdf, dataset_display_name="people_again")
    linker2 = Linker(df2, "/tmp/splink_research/model_dedupe.json", log_level=logging.WARNING)
    p2 = linker2.inference.predict(threshold_match_probability=0.5)
    cl2 = linker2.clustering.cluster_pairwise_predictions_at_threshold(p2, 0.95)
    print("reloaded model: pairs", p2.as_spark_dataframe().count(),
          "clusters", cl2.as_spark_dataframe().select("cluster_id").distinct().count())

print("\nTIMINGS")
for k, v in TIMINGS.items():
    print(f"  {k:55s} {v:7.2f}s")
spark.stop()
