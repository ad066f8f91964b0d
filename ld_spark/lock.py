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
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ld_spark import fs
from ld_spark.errors import OutputBusy

LOCK_FILE = "_run.lock"


def _holder() -> dict:
    started = dt.datetime.fromtimestamp(time.time(), dt.UTC).isoformat(timespec="seconds")
    return {"holder": f"run pid {os.getpid()} on {socket.gethostname()}", "started": started}


def _busy(out, holder: str) -> OutputBusy:
    return OutputBusy(f"output {out} is in use by {holder}; wait for it to finish or choose another --out")


@contextlib.contextmanager
def exclusive(out: str | Path, lease_seconds: float = 120.0) -> Iterator[None]:
    """Hold OUT_DIR's run lock for the block, or raise OutputBusy at once (module docstring)."""
    where = fs.resolve(out)
    if isinstance(where, Path):
        with _flocked(where):
            yield
    elif where.startswith(("s3a://", "s3://")):
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
        handle.write(f"run pid {os.getpid()} started {dt.datetime.now().isoformat(timespec='seconds')}")
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
        try:
            stream.write(bytearray(json.dumps(_holder()).encode()))
        finally:
            stream.close()
    except BaseException:
        filesystem.delete(path, False)  # a lock nobody holds would stay for good
        raise
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
        aws_session_token=hadoop.get("fs.s3a.session.token") or None,
        config=BotoConfig(s3={"addressing_style": "path" if path_style else "auto"}),
    )


def _code(err: Exception) -> str | None:
    return getattr(err, "response", {}).get("Error", {}).get("Code")


def _failed_precondition(err: Exception) -> bool:
    return _code(err) in ("PreconditionFailed", "ConditionalRequestConflict", "412")


def _missing(err: Exception) -> bool:
    return _code(err) in ("NoSuchKey", "404")


class S3Lease:
    """The S3 lock object of one run (module docstring): acquire, renew, release.

    The body carries a random token, so that a conditional PUT botocore retried after its first
    attempt had in fact succeeded (a 412 on our own write) is recognised as ours. A run whose
    lease lapses (another run took it over, or renewals failed until it expired) is stopped:
    its Spark jobs are cancelled and the main thread interrupted, and the block raises OutputBusy.
    """

    def __init__(self, url: str, lease_seconds: float, client=None):
        bucket_and_key = url.split("://", 1)[1]
        self.url, self.lease = url, lease_seconds
        self.bucket, self.key = bucket_and_key.split("/", 1)
        self.client = client or s3_client()
        self.token = secrets.token_hex(16)
        self.etag: str | None = None
        self.expires = 0.0
        self.lost: str | None = None
        self._stop = threading.Event()

    @property
    def out(self) -> str:
        return self.url.rsplit("/", 1)[0]

    def _put(self, **condition) -> None:
        """One conditional PUT of a fresh lease; on a 412 the object is read back, and the write
        counts as ours if it holds our token (a retried request whose first attempt succeeded)."""
        expires = time.time() + self.lease
        body = json.dumps({**_holder(), "expires": expires, "token": self.token}).encode()
        try:
            self.etag = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, **condition)["ETag"]
        except Exception as err:
            if not _failed_precondition(err):
                raise
            held, etag = self._read()
            if held.get("token") != self.token:
                raise
            self.etag = etag
        self.expires = expires

    def _read(self) -> tuple[dict, str]:
        held = self.client.get_object(Bucket=self.bucket, Key=self.key)
        return json.loads(held["Body"].read() or b"{}"), held["ETag"]

    def acquire(self, attempts: int = 3) -> None:
        for _ in range(attempts):
            try:
                self._put(IfNoneMatch="*")
                return
            except Exception as err:
                if not _failed_precondition(err):
                    raise
            try:
                holder, etag = self._read()
            except Exception as err:
                if _missing(err):
                    continue  # released between our PUT and the read: try again
                raise
            if holder.get("expires", 0) > time.time():
                raise _busy(self.out, f"{holder.get('holder')} started {holder.get('started')}")
            try:  # the holder stopped renewing: take the lock over, unless another run just did
                self._put(IfMatch=etag)
            except Exception as err:
                if _failed_precondition(err) or _missing(err):
                    continue
                raise
            print(
                f"lock {self.url} of {holder.get('holder')} (started {holder.get('started')}) had expired: taken over",
                flush=True,
            )
            return
        raise _busy(self.out, "another run (the lock changed hands while this run tried to take it)")

    def renew(self) -> bool:
        """Extend the lease; False (and `lost` says why) if another run holds it now."""
        try:
            self._put(IfMatch=self.etag)
            return True
        except Exception as err:
            if not (_failed_precondition(err) or _missing(err)):
                raise
            self.lost = f"lock {self.url} was taken over or removed by another run (this run's lease lapsed)"
            return False

    def release(self) -> None:
        """Delete the lock object if it is still ours; a failure is reported, not raised (the
        lease then lapses on its own)."""
        try:
            holder, _ = self._read()
            if holder.get("token") == self.token:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception as err:
            print(f"lock {self.url}: not removed ({err}); it lapses {self.lease:.0f} s after its last renewal")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                if not self.renew():
                    break
            except Exception as err:  # a network blip: the next beat tries again while the lease lasts
                if time.time() < self.expires:
                    print(f"lock {self.url}: renewal failed ({err}); trying again", flush=True)
                    continue
                self.lost = f"lock {self.url}: renewals failed until the lease lapsed ({err})"
                break
        if self.lost is not None and not self._stop.is_set():
            _stop_the_run()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        beat = threading.Thread(target=self._heartbeat, name="ld-spark-lock", daemon=True)
        beat.start()
        try:
            yield
        except BaseException:
            if self.lost is None:
                raise
            raise OutputBusy(self.lost) from None
        finally:
            self._stop.set()
            beat.join()
            if self.lost is None:
                self.release()
        if self.lost is not None:
            raise OutputBusy(self.lost)


def _stop_the_run() -> None:
    """Cancel the session's Spark jobs and interrupt the main thread (where the run is) with a
    real SIGINT sent to it, which also wakes it from a blocking call (a sleep, a socket read)."""
    import signal

    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        context.cancelAllJobs()
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
