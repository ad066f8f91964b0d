"""Files that are not Delta tables: where RAW_DIR and OUT_DIR may be local paths or URLs.

A location is a local path (a `Path`; `file://` URLs become one) or a URL of a filesystem
Hadoop knows (`s3a://`, `hdfs://`, `abfss://`, ...; a `str`). Everything a run reads or writes
beside its Delta tables goes through here: raw folder listings and CSV headers, the generator's
truth, the saved model, results/, the reconciliation, Delta logs read without a Spark job.

Why Hadoop's FileSystem (through the JVM the session already runs) and not fsspec: Spark reads
and writes the same URLs with it, so one set of settings (`spark.hadoop.fs.*`, credentials
from the environment or instance profile) serves the Delta tables, the raw reads on the
executors and the files here, and every scheme Spark can read works here too. Local paths keep
Python's own file API (and its atomic rename), which is what the tests and `make run` use.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pyspark.sql import SparkSession

Location = Path | str


def resolve(location: str | Path) -> Location:
    """A local path as a Path (a `file:` URL, `file:///x` or Hadoop's `file:/x`, as its path),
    any other URL as its text."""
    if isinstance(location, Path):
        return location
    if location.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(location).path))
    if "://" in location:
        return location
    return Path(location)


def is_url(location: str | Path) -> bool:
    return isinstance(resolve(location), str)


def join(base: str | Path, *parts: str) -> Location:
    where = resolve(base)
    if isinstance(where, Path):
        return where.joinpath(*parts)
    return "/".join([where.rstrip("/"), *(p.strip("/") for p in parts)])


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    location: Location
    is_dir: bool
    size: int


def _hadoop(url: str):
    """(Hadoop FileSystem, Hadoop Path) for a URL, with the session's Hadoop settings."""
    spark = SparkSession.active()
    path = spark._jvm.org.apache.hadoop.fs.Path(url)
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path


def exists(location: str | Path) -> bool:
    where = resolve(location)
    if isinstance(where, Path):
        return where.exists()
    fs, path = _hadoop(where)
    return bool(fs.exists(path))


def is_dir(location: str | Path) -> bool:
    where = resolve(location)
    if isinstance(where, Path):
        return where.is_dir()
    fs, path = _hadoop(where)
    return bool(fs.exists(path)) and bool(fs.getFileStatus(path).isDirectory())


def listing(location: str | Path) -> list[Entry]:
    """The folder's entries by name (a missing folder: none)."""
    where = resolve(location)
    if isinstance(where, Path):
        if not where.is_dir():
            return []
        return [Entry(p.name, p, p.is_dir(), 0 if p.is_dir() else p.stat().st_size) for p in sorted(where.iterdir())]
    fs, path = _hadoop(where)
    if not fs.exists(path):
        return []
    entries = [
        Entry(s.getPath().getName(), join(where, s.getPath().getName()), bool(s.isDirectory()), int(s.getLen()))
        for s in fs.listStatus(path)
    ]
    return sorted(entries, key=lambda e: e.name)


def size(location: str | Path) -> int:
    where = resolve(location)
    if isinstance(where, Path):
        return where.stat().st_size
    fs, path = _hadoop(where)
    return int(fs.getFileStatus(path).getLen())


def read_bytes(location: str | Path, limit: int | None = None) -> bytes:
    """The file's bytes (at most `limit` of them from its start)."""
    where = resolve(location)
    if isinstance(where, Path):
        with where.open("rb") as handle:
            return handle.read() if limit is None else handle.read(limit)
    fs, path = _hadoop(where)
    length = int(fs.getFileStatus(path).getLen())
    wanted = length if limit is None else min(limit, length)
    stream = fs.open(path)
    try:
        jvm = SparkSession.active()._jvm
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream, wanted)) if wanted else b""
    finally:
        stream.close()


def first_line(location: str | Path) -> bytes:
    """The file's first line, its line end included (the whole file if it has none)."""
    chunk = 1 << 16
    while True:
        head = read_bytes(location, chunk)
        end = head.find(b"\n")
        if end >= 0:
            return head[: end + 1]
        if len(head) < chunk:
            return head
        chunk *= 4


def read_text(location: str | Path) -> str:
    return read_bytes(location).decode("utf-8")


def write_bytes(location: str | Path, data: bytes) -> Location:
    """Replace the file whole: locally a sibling temporary file renamed onto it (a run killed
    mid-write leaves the old file or none); on an object store one PUT, which is whole too."""
    where = resolve(location)
    if isinstance(where, Path):
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = where.with_name(f".{where.name}.tmp-{os.getpid()}")
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, where)
        finally:
            tmp.unlink(missing_ok=True)
        return where
    fs, path = _hadoop(where)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()
    return where


def write_text(location: str | Path, text: str) -> Location:
    return write_bytes(location, text.encode("utf-8"))


def make_dirs(location: str | Path) -> None:
    where = resolve(location)
    if isinstance(where, Path):
        where.mkdir(parents=True, exist_ok=True)
    else:
        fs, path = _hadoop(where)
        fs.mkdirs(path)


def delete(location: str | Path) -> None:
    """Remove a file or a folder with everything in it (nothing there: nothing done)."""
    import shutil

    where = resolve(location)
    if isinstance(where, Path):
        if where.is_dir():
            shutil.rmtree(where, ignore_errors=True)
        else:
            where.unlink(missing_ok=True)
        return
    fs, path = _hadoop(where)
    if fs.exists(path):
        fs.delete(path, True)
