"""One run at a time per OUT_DIR: `exclusive(out)` holds OUT_DIR/_run.lock for the whole run.

- A local or POSIX shared folder: an flock. The kernel drops it when the holder exits, however
  it exits (SIGKILL included), so a crashed run never blocks the next.
- S3 (`s3a://`, through the S3 API itself, not Hadoop: Hadoop's create-if-absent on S3 is a
  check then a write, which two runs can both pass). A lease: the lock object is created with
  a conditional write (`If-None-Match: *`, which S3 refuses when the object exists), renewed by a
  heartbeat thread with `If-Match` on its own ETag, and deleted at the end. A run killed without
  deleting it stops renewing; once the lease has expired the next run takes the lock over with
  `If-Match` on the stale object's ETag, so of two runs taking over at once only one wins.
- Any other URL (`hdfs://`, `abfss://`, ...): Hadoop's create without overwrite, which HDFS and
  ABFS perform atomically. A crashed run's lock file stays; the error names it, with its last
  heartbeat, for the operator to remove once they know its run is dead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ld_spark import fs
from ld_spark.errors import OutputBusy

LOCK_FILE = "_run.lock"


def _holder(lease_seconds: float | None = None) -> dict:
    now = time.time()
    holder = {
        "holder": f"run pid {os.getpid()} on {socket.gethostname()}",
        "started": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
    }
    if lease_seconds is not None:
        holder["expires"] = now + lease_seconds
    return holder


def _busy(out, holder: str) -> OutputBusy:
    return OutputBusy(f"output {out} is in use by {holder}; wait for it to finish or choose another --out")


@contextlib.contextmanager
def exclusive(out: str | Path, lease_seconds: float = 120.0) -> Iterator[None]:
    """Hold OUT_DIR's run lock for the block, or raise OutputBusy at once (module docstring)."""
    where = fs.resolve(out)
    if isinstance(where, Path):
        with _flocked(where):
            yield
    elif where.startswith("s3a://"):
        with S3Lease(fs.join(where, LOCK_FILE), lease_seconds).held():
            yield
    else:
        with _created(where):
            yield


@contextlib.contextmanager
def _flocked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise _busy(folder, handle.read().strip() or "another process") from None
        handle.seek(0)
        handle.truncate()
        holder = _holder()
        handle.write(f"run pid {os.getpid()} started {holder['started']}")
        handle.flush()
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def _created(out: str) -> Iterator[None]:
    lock = fs.join(out, LOCK_FILE)
    filesystem, path = fs._hadoop(lock)
    try:
        stream = filesystem.create(path, False)
    except Exception as err:  # py4j: FileAlreadyExistsException
        if "FileAlreadyExists" not in str(err) and not filesystem.exists(path):
            raise
        text = fs.read_text(lock).strip() or "another process"
        raise _busy(out, f"{text} (a run that died leaves {lock}: remove it once you know that)") from None
    try:
        stream.write(bytearray(json.dumps(_holder()).encode()))
    finally:
        stream.close()
    try:
        yield
    finally:
        filesystem.delete(path, False)


def s3_client():
    """A boto3 S3 client with the session's s3a settings (endpoint, path-style access, keys) where
    they are set, else boto3's own (the environment, the instance's role)."""
    import boto3
    from botocore.config import Config as BotoConfig
    from pyspark.sql import SparkSession

    hadoop = SparkSession.active()._jsc.hadoopConfiguration()
    endpoint = hadoop.get("fs.s3a.endpoint")
    if endpoint and "://" not in endpoint:
        secure = (hadoop.get("fs.s3a.connection.ssl.enabled") or "true").lower() == "true"
        endpoint = f"{'https' if secure else 'http'}://{endpoint}"
    path_style = (hadoop.get("fs.s3a.path.style.access") or "false").lower() == "true"
    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=hadoop.get("fs.s3a.endpoint.region") or os.environ.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=hadoop.get("fs.s3a.access.key") or None,
        aws_secret_access_key=hadoop.get("fs.s3a.secret.key") or None,
        config=BotoConfig(s3={"addressing_style": "path" if path_style else "auto"}),
    )


def _failed_precondition(err: Exception) -> bool:
    code = getattr(err, "response", {}).get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "412")


class S3Lease:
    """The S3 lock object of one run (module docstring): acquire, renew, release."""

    def __init__(self, url: str, lease_seconds: float, client=None):
        bucket_and_key = url.split("://", 1)[1]
        self.url, self.lease = url, lease_seconds
        self.bucket, self.key = bucket_and_key.split("/", 1)
        self.client = client or s3_client()
        self.etag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()

    def _body(self) -> bytes:
        return json.dumps(_holder(self.lease)).encode()

    def acquire(self) -> None:
        try:
            self.etag = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*")[
                "ETag"
            ]
            return
        except Exception as err:
            if not _failed_precondition(err):
                raise
        held = self.client.get_object(Bucket=self.bucket, Key=self.key)
        holder = json.loads(held["Body"].read() or b"{}")
        if holder.get("expires", 0) > time.time():
            raise _busy(self.url.rsplit("/", 1)[0], f"{holder.get('holder')} started {holder.get('started')}")
        try:  # the holder stopped renewing: take the lock over, unless another run just did
            self.etag = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=self._body(), IfMatch=held["ETag"]
            )["ETag"]
        except Exception as err:
            if not _failed_precondition(err):
                raise
            raise _busy(self.url.rsplit("/", 1)[0], "another run (it took over an expired lock)") from None
        print(
            f"lock {self.url} of {holder.get('holder')} (started {holder.get('started')}) had expired: taken over",
            flush=True,
        )

    def renew(self) -> bool:
        """Extend the lease; False (and `lost` says why) if another run holds it now."""
        try:
            self.etag = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), IfMatch=self.etag)[
                "ETag"
            ]
            return True
        except Exception as err:
            if not _failed_precondition(err):
                raise
            self.lost = f"lock {self.url} was taken over by another run (this run's lease lapsed)"
            return False

    def release(self) -> None:
        head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        if head["ETag"] == self.etag:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                if not self.renew():
                    return
            except Exception as err:  # a network blip: the next beat tries again, the lease allows two
                print(f"lock {self.url}: renewal failed ({err}); trying again", flush=True)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        beat = threading.Thread(target=self._heartbeat, name="ld-spark-lock", daemon=True)
        beat.start()
        try:
            yield
        finally:
            self._stop.set()
            beat.join()
            if self.lost is None:
                self.release()
        if self.lost is not None:
            raise OutputBusy(self.lost)
