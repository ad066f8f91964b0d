#!/usr/bin/env bash
# The one-shot job container: wait for the MLflow server and the object store, generate a small
# synthetic extract (local mode) and upload it to s3a://ld-spark/raw, spark-submit the pipeline to
# the standalone cluster with OUT_DIR s3a://ld-spark/out, then check what it wrote there (the
# object store lives only as long as the stack).
set -euo pipefail
cd /opt/ld-spark
export S3=http://s3:5000
python - <<'PY'
import os, time, urllib.request

import boto3

for url in ("http://mlflow:5000/health", os.environ["S3"]):
    for _ in range(120):
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        raise SystemExit(f"no answer from {url}")
boto3.client("s3", endpoint_url=os.environ["S3"]).create_bucket(Bucket="ld-spark")
PY
raw=$(mktemp -d)/raw
python -m ld_spark.cli generate --scale "$SCALE" --seed 1 --out "$raw" --conf test
python - "$raw" <<'PY'
import os, sys
from pathlib import Path

import boto3

s3, root = boto3.client("s3", endpoint_url=os.environ["S3"]), Path(sys.argv[1])
files = [p for p in root.rglob("*") if p.is_file()]
for path in files:
    s3.upload_file(str(path), "ld-spark", f"raw/{path.relative_to(root)}")
print(f"job: {len(files)} files uploaded to s3://ld-spark/raw")
PY
zip_dir=$(mktemp -d)
python -c "import shutil, sys; shutil.make_archive(sys.argv[1] + '/ld_spark', 'zip', base_dir='ld_spark')" "$zip_dir"
# The s3a jars are in the image on every node (SPARK_DIST_CLASSPATH, compose.yaml): not shipped.
spark-submit --master spark://master:7077 --deploy-mode client \
  --jars "$(python -m ld_spark.setup_jars --list)" --py-files "$zip_dir/ld_spark.zip" \
  --conf spark.driver.host=job --conf spark.pyspark.python=/opt/venv/bin/python \
  --conf spark.ui.showConsoleProgress=false \
  --conf spark.hadoop.fs.s3a.endpoint=$S3 --conf spark.hadoop.fs.s3a.path.style.access=true \
  --conf spark.hadoop.fs.s3a.connection.ssl.enabled=false \
  --driver-memory 2g --executor-memory 2g \
  jobs/run.py --raw s3a://ld-spark/raw --out s3a://ld-spark/out --conf cluster
python - <<'PY'
import csv, io, json, os

import boto3

from ld_spark.contract import ESTIMANDS

s3 = boto3.client("s3", endpoint_url=os.environ["S3"])
manifest = json.loads(s3.get_object(Bucket="ld-spark", Key="out/results/manifest.json")["Body"].read())
text = s3.get_object(Bucket="ld-spark", Key="out/results/estimates.csv")["Body"].read().decode()
rows = {r["estimand"]: r for r in csv.DictReader(io.StringIO(text))}
assert list(rows) == ESTIMANDS, sorted(set(ESTIMANDS) ^ set(rows))
tables = s3.list_objects_v2(Bucket="ld-spark", Prefix="out/analysis/panel/_delta_log/")["KeyCount"]
artifacts = [o["Key"] for o in s3.list_objects_v2(Bucket="ld-spark", Prefix="mlflow/")["Contents"]]
assert any(k.endswith("results/estimates.csv") for k in artifacts), artifacts[:5]
estimated = [n for n, r in rows.items() if r["estimate"]]
print(
    f"job: s3a://ld-spark/out/results holds {len(manifest['files'])} files and the manifest, "
    f"{len(rows)} estimand rows ({len(estimated)} estimated), custody_or "
    f"{rows['custody_or']['estimate'] or 'withheld'}; the panel's Delta log has {tables} objects; "
    f"MLflow's artifacts in s3://ld-spark/mlflow: {len(artifacts)} objects"
)
PY
