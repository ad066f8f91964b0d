"""The one door out: what leaves the secure environment, and how.

sdc: disclosure control of every released cell. publish: results/ written through sdc, staged
and swapped in whole with a manifest. report: figures drawn from released rows only.
tracking: the MLflow run, which gets released numbers and manifest files only.
"""
