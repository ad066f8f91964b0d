#!/usr/bin/env bash
# The one-shot job container: wait for the MLflow server, generate a small synthetic extract
# (local mode), then spark-submit the pipeline to the standalone cluster.
set -euo pipefail
cd /opt/ld-spark
python - <<'PY'
import time, urllib.request
for _ in range(120):
    try:
        urllib.request.urlopen("http://mlflow:5000/health", timeout=2)
        break
    except OSError:
        time.sleep(1)
else:
    raise SystemExit("MLflow server did not answer on http://mlflow:5000")
PY
rm -rf /data/raw /data/out
python -m ld_spark.cli generate --scale "$SCALE" --seed 1 --out /data/raw --conf test
zip_dir=$(mktemp -d)
python -c "import shutil, sys; shutil.make_archive(sys.argv[1] + '/ld_spark', 'zip', base_dir='ld_spark')" "$zip_dir"
spark-submit --master spark://master:7077 --deploy-mode client \
  --jars "$(python -m ld_spark.setup_jars --list)" --py-files "$zip_dir/ld_spark.zip" \
  --conf spark.driver.host=job --conf spark.pyspark.python=/opt/venv/bin/python \
  --conf spark.ui.showConsoleProgress=false \
  --driver-memory 2g --executor-memory 2g \
  jobs/run.py --raw /data/raw --out /data/out --conf cluster
