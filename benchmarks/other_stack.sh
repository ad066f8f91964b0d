#!/bin/bash
# One `ld-spark run` of this checkout on another Python environment and JVM, for comparing Spark,
# Delta and Java versions (benchmarks/results/jit.md, "Newer Spark, Delta and Java"):
#
#   benchmarks/other_stack.sh NAME VENV JAVA_HOME [OVERLAY] [RAW]
#
# VENV: a venv with the other pyspark and delta-spark (and this project's other pins); this
# checkout's ld_spark is imported from the working tree. OVERLAY: a conf overlay naming the Delta
# jars for that Spark (delta_package, jars_dir) and any JVM options (spark.extra). RAW: an
# extract (default data/bench/raw_0.05). Prints the wall time and the stages' seconds; the run's
# output folder is ${OUT_ROOT:-/tmp/other_stack}/NAME, its console log NAME.log beside it.
set -u
usage="usage: benchmarks/other_stack.sh NAME VENV JAVA_HOME [OVERLAY] [RAW]"
NAME=${1:?$usage} VENV=${2:?$usage} JAVA=${3:?$usage} OVERLAY=${4:-} RAW=${5:-}
case $NAME in */* | . | ..) echo "NAME is a folder name, not a path: $NAME" >&2; exit 2 ;; esac
# Paths as given from where the script was called; the run itself starts in the checkout.
VENV=$(realpath "$VENV") JAVA=$(realpath "$JAVA")
[ -n "$OVERLAY" ] && OVERLAY=$(realpath "$OVERLAY")
[ -n "$RAW" ] && RAW=$(realpath "$RAW")
ROOT=$(realpath -m "${OUT_ROOT:-/tmp/other_stack}")
cd "$(dirname "$0")/.." || exit 2
RAW=${RAW:-data/bench/raw_0.05}
mkdir -p "$ROOT" && rm -rf "${ROOT:?}/${NAME:?}"
export JAVA_HOME=$JAVA PATH=$JAVA/bin:$PATH MLFLOW_DISABLE_TELEMETRY=true
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$ROOT/mlflow.db}
start=$(date +%s.%N)
PYTHONPATH=$PWD "$VENV/bin/python" -c "import sys; from ld_spark.cli import main; sys.exit(main())" \
    run --conf local ${OVERLAY:+--conf "$OVERLAY"} --raw "$RAW" --out "$ROOT/$NAME" > "$ROOT/$NAME.log" 2>&1
rc=$?
end=$(date +%s.%N)
echo "$NAME exit $rc, wall $(awk "BEGIN { printf \"%.1f\", $end - $start }") s"
grep -E "^(landing|bronze|linkage|series|effects|sensitivity|release) " "$ROOT/$NAME.log" | awk '{printf "%s %s s; ", $1, $2}'
echo
exit $rc
