"""The pseudonymisation key and the person_key it makes: a keyed HMAC-SHA256 of the component id,
not reversible without the key, which never leaves the run."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ld_spark.config import LinkageConf, conf_dir
from ld_spark.errors import InputError
from ld_spark.frames import Transform
from ld_spark.session import submitted_by_spark_submit

# HMAC-SHA256 takes keys of any length, but a short one can be guessed and every person_key then
# recomputed from component ids: 32 bytes is the hash's own size (RFC 2104 section 3).
MIN_KEY_BYTES = 32


def key_path(conf: LinkageConf) -> Path:
    """The key file: key_file as given if absolute, else in the project directory (the one
    holding conf/, or LD_SPARK_CONF_DIR's parent).

    Not the working directory: a run started from elsewhere would miss the key, make a new one and
    change every person_key. Not OUT_DIR either: a pseudonymisation key is kept apart from the
    pseudonymised data, and one key serves every output (`make run` has always kept it here).
    """
    path = Path(conf.key_file).expanduser()
    return path if path.is_absolute() else conf_dir().parent / path


def load_key(conf: LinkageConf, path: Path, master: str) -> bytes:
    """The HMAC key: from the environment, else the key file at `path` (see key_path).

    The file is created, with 32 random bytes as hex, only when the config allows it and Spark runs
    locally outside spark-submit (`master` is the session's): on a cluster a missing key is an
    error, never a fresh key that would silently change every person_key. A key file that group
    or others may read or write is refused, as ssh refuses such a private key. The key itself is
    never printed, not even in an error.
    """
    value = os.environ.get(conf.key_env)
    if value:
        return _long_enough(value.encode(), f"the key in ${conf.key_env}")
    if (
        not path.exists()
        and conf.create_key_if_missing
        and master.startswith("local")
        and not submitted_by_spark_submit()
    ):
        try:
            # O_EXCL: never overwrite a key another run has just made; 0o600 from the first byte.
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(handle, "w") as key_file:
                key_file.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
            print(
                f"created a local pseudonymisation key in {path} (keep it out of git; set {conf.key_env} to use your own)"
            )
    if not path.exists():
        raise InputError(
            f"no pseudonymisation key: set {conf.key_env} or create {path} "
            f"(at least {MIN_KEY_BYTES} bytes, mode 600; a key is created only for a local run "
            f"whose config sets linkage.create_key_if_missing)"
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise InputError(f"pseudonymisation key file {path} is open to group or others (mode {mode:o}): chmod 600 it")
    return _long_enough(path.read_text().strip().encode(), f"the key file {path}")


def _long_enough(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise InputError(
            f"pseudonymisation key too short: {where} holds {len(key)} bytes, at least "
            f"{MIN_KEY_BYTES} are needed (e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key


def keyed(key: bytes):
    """A column function: its string argument -> HMAC-SHA256 under `key`, in hex (null stays null)."""

    @F.pandas_udf("string")
    def _(values: pd.Series) -> pd.Series:
        return values.map(lambda v: None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest())

    return _


def hmac_hex(key: bytes, value: str) -> str:
    """The same HMAC as `keyed`, on the driver."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def with_person_key(key: bytes) -> Transform:
    """component -> person_key, HMAC-SHA256 under the run's key."""

    def _(components: DataFrame) -> DataFrame:
        return components.withColumn("person_key", keyed(key)(F.col("component")))

    return _
