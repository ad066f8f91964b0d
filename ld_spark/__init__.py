"""ld-spark: the Liaison and Diversion linked-data evaluation on Spark and Delta."""

__version__ = "0.1.0"
