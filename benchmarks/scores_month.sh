#!/bin/bash
# Month 1 (the model trained), then month 2 predicting with month 1's model: scores carried over into
# OUT_DIR, and not carried over (linkage.reuse_scores: false) into a copy of month 1's OUT_DIR.
# The months are benchmarks/refresh.py's (data/bench_refresh/month{1,2}_1.0, scale 1, seed 1).
# Results: benchmarks/results/scores.md (the stage lines of each run's log, and the results compared).
set -e
cd "$(dirname "$0")/.."
export MLFLOW_DISABLE_TELEMETRY=true  # and LD_SPARK_HMAC_KEY, or the key file, as for any run
B=data/bench_scores
rm -rf $B/out $B/out_noreuse
cat > $B/reuse.yaml <<Y
linkage:
  model_in: $PWD/$B/out/linkage/model/splink_model.json
paths:
  skip_unchanged: false
mlflow:
  tracking_uri: sqlite:///$PWD/$B/mlflow.db
Y
cat > $B/month1.yaml <<Y
paths:
  skip_unchanged: false
mlflow:
  tracking_uri: sqlite:///$PWD/$B/mlflow.db
Y
cat > $B/noreuse.yaml <<Y
linkage:
  model_in: $PWD/$B/out_noreuse/linkage/model/splink_model.json
  reuse_scores: false
paths:
  skip_unchanged: false
mlflow:
  tracking_uri: sqlite:///$PWD/$B/mlflow.db
Y
t() { local s=$(date +%s.%N); "$@"; echo "elapsed $(echo "$(date +%s.%N) - $s" | bc)"; }
t .venv/bin/python -m ld_spark.cli run --raw data/bench_refresh/month1_1.0 --out $B/out --conf local --conf $B/month1.yaml > $B/month1.log 2>&1; tail -1 $B/month1.log
cp -a $B/out $B/out_noreuse
t .venv/bin/python -m ld_spark.cli run --raw data/bench_refresh/month2_1.0 --out $B/out --conf local --conf $B/reuse.yaml > $B/month2.log 2>&1
t .venv/bin/python -m ld_spark.cli run --raw data/bench_refresh/month2_1.0 --out $B/out_noreuse --conf local --conf $B/noreuse.yaml > $B/month2_noreuse.log 2>&1
grep -E "^(landing|bronze|linkage|series|effects|sensitivity) |^elapsed" $B/month1.log $B/month2.log $B/month2_noreuse.log
for f in $B/out/results/*.csv; do cmp -s "$f" "$B/out_noreuse/results/$(basename "$f")" && echo "same $(basename "$f")" || echo "DIFFERENT $(basename "$f")"; done
