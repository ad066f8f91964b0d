#!/usr/bin/env bash
# Build the image and run the compose stack end to end on this machine, then check the results.
#   bash docker/smoke.sh
# Starts dockerd if none answers (Debian's docker.io), makes the Debian base image with
# debootstrap + docker import when it is missing (no registry is reachable here), passes the
# host CA bundle into the build for pip, runs the S3 store + master + 2 workers + MLflow + the job,
# checks what the job found in the store (results/, MLflow's artifacts) and the MLflow run, and
# tears the stack down.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
DOCKER=${DOCKER:-/usr/bin/docker}
COMPOSE=${COMPOSE:-docker-compose}
BASE=${BASE_IMAGE:-ld-spark-base:bookworm}
export LD_SPARK_SMOKE_DIR=${LD_SPARK_SMOKE_DIR:-$PWD/docker/.smoke}
export LD_SPARK_HMAC_KEY=${LD_SPARK_HMAC_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}

for tool in dockerd debootstrap docker-compose; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq docker.io debootstrap docker-compose; break; }
done
if ! $DOCKER info >/dev/null 2>&1; then
  echo "smoke: starting dockerd"
  (dockerd >docker/.dockerd.log 2>&1 &)
  for _ in $(seq 60); do $DOCKER info >/dev/null 2>&1 && break; sleep 1; done
  $DOCKER info >/dev/null 2>&1 || { echo "smoke: dockerd did not start, see docker/.dockerd.log"; exit 1; }
fi
if ! $DOCKER image inspect "$BASE" >/dev/null 2>&1; then
  echo "smoke: making base image $BASE with debootstrap"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  tar -C "$rootfs" -c . | $DOCKER import - "$BASE"
  rm -rf "$rootfs"
fi
make setup >/dev/null                      # the Delta and s3a jars in .cache/, baked into the image
mkdir -p docker/.build
cp /etc/ssl/certs/ca-certificates.crt docker/.build/ca.crt
echo "smoke: building ld-spark:local on $BASE"
$DOCKER build -q --network host --build-arg BASE_IMAGE="$BASE" -t ld-spark:local -f docker/Dockerfile . >/dev/null
built=$(date +%s)

rm -rf "$LD_SPARK_SMOKE_DIR" && mkdir -p "$LD_SPARK_SMOKE_DIR/mlflow"
echo "smoke: running the stack (S3 store, master, 2 workers, MLflow, job)"
status=0
$COMPOSE -f docker/compose.yaml -p ld-spark-smoke up --no-color --abort-on-container-exit --exit-code-from job \
  >"$LD_SPARK_SMOKE_DIR/compose.log" 2>&1 || status=$?
$COMPOSE -f docker/compose.yaml -p ld-spark-smoke down -v >/dev/null 2>&1 || true
if [ "$status" -ne 0 ]; then
  tail -40 "$LD_SPARK_SMOKE_DIR/compose.log"; echo "smoke: FAILED (job exit $status)"; exit 1
fi

# The job ran on the cluster: both workers launched executors for it.
for worker in worker1 worker2; do
  grep -q "^${worker}_1 .*Asked to launch executor" "$LD_SPARK_SMOKE_DIR/compose.log" \
    || { echo "smoke: FAILED ($worker launched no executor)"; exit 1; }
done
# The job checked the results and MLflow's artifacts in the object store before the stack (and
# the store, which keeps its objects in memory) went down; the MLflow server's sqlite store is
# here, and holds the finished run.
grep -o "job: s3a://ld-spark/out/results holds .*" "$LD_SPARK_SMOKE_DIR/compose.log" \
  || { echo "smoke: FAILED (the job did not report its results in the object store)"; exit 1; }
.venv/bin/python - "$LD_SPARK_SMOKE_DIR" <<'PY'
import sys
from pathlib import Path

import mlflow

root = Path(sys.argv[1])
mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow/mlflow.db'}")
runs = mlflow.search_runs(experiment_names=["ld-spark"], filter_string="attributes.status = 'FINISHED'")
assert len(runs) == 1, runs
run = runs.iloc[0]
assert run["artifact_uri"].startswith("mlflow-artifacts:"), run["artifact_uri"]
print(f"smoke: MLflow run {run['run_id']} finished, artifacts proxied to s3://ld-spark/mlflow")
PY
echo "smoke: passed in $(( $(date +%s) - started )) s (image build $(( built - started )) s)"
