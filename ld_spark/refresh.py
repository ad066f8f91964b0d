"""Nothing new, nothing run: a rerun on the same raw files, settings and code as the last finished
run in OUT_DIR, whose tables no one has changed since, stops after hashing the files.

After each finished run, `linkage/refresh.json` records what it was made from: every raw file's
SHA-256, one digest of the settings (the config, the code of `ld_spark/`, and a keyed hash of the
pseudonymisation key, never the key), the run id and the Delta version of every table it left.
The next run compares. Anything different (a file added, changed or gone; another setting; a new
version of the code; a table written since, by `ld-spark forget` for instance) and it runs whole.

Raw folders under a URL are not hashed (it would mean reading every byte through the driver):
runs on them always run, and run whole.

A run whose raw folder has only grown since the last finished run is incremental (`increment`):
it lands only the new files and reclassifies only the keys their rows hold, MERGEd into bronze
(ld_spark.pipeline). That needs the same code and libraries as the last run (what landing and
bronze are made by), every file it read still there unchanged, and its landing, bronze and
quarantine tables as it left them, or changed since only by `ld-spark forget`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import NamedTuple

from ld_spark import catalog, fs, io
from ld_spark.config import Config
from ld_spark.link.key import hmac_hex
from ld_spark.release.publish import MANIFEST

STATE_FILE = (catalog.LINKAGE, "refresh.json")
PACKAGE = Path(__file__).resolve().parent


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def settings_json(config: Config) -> str:
    """The config as a run's results depend on it: not its folders (the raw files are hashed, and
    OUT_DIR is where the state is) or whether to skip (and not the overlays' names, only what they set)."""
    return config.model_dump_json(exclude={"paths": True, "overlays": True})


LIBRARIES = ("pyspark", "delta-spark", "splink", "duckdb", "statsmodels", "numpy", "pandas", "scipy", "mlflow")


def made_from(raw: fs.Location, layouts: dict, config: Config, key: bytes) -> dict | None:
    """What a run on `raw` is made from (layouts: io.check_tables' tables), or None for a raw
    folder under a URL.

    Raw: every table file, and `_truth/` (the linkage quality is scored against it). Settings:
    the config, the code of ld_spark/, the versions of the libraries that compute, the saved model
    a run predicts with (linkage.model_in, by content), the key (keyed hash), and today's date when
    `analysis.follow_up_end` is not set (the follow-up then ends at the extract's latest date, but
    never after today)."""
    from importlib import metadata

    if fs.is_url(raw):
        return None
    files = {
        f"{table}/{Path(str(f)).name}": file_digest(Path(str(f)))
        for table, (_, groups) in sorted(layouts.items())
        for group in groups.values()
        for f in group
    }
    truth = Path(str(fs.join(raw, "_truth")))
    if truth.is_dir():
        files |= {f"_truth/{p.name}": file_digest(p) for p in sorted(truth.iterdir()) if p.is_file()}
    code = hashlib.sha256()
    for source in sorted(PACKAGE.rglob("*.py")):
        code.update(str(source.relative_to(PACKAGE)).encode() + b"\0" + source.read_bytes())
    # What landing and bronze are made by: the code and the libraries (no setting changes them).
    ingest = [code.hexdigest(), *(f"{name}=={metadata.version(name)}" for name in LIBRARIES)]
    parts = [settings_json(config), *ingest, hmac_hex(key, "ld-spark refresh")]
    if config.linkage.model_in:
        parts.append(hashlib.sha256(fs.read_bytes(fs.resolve(config.linkage.model_in))).hexdigest())
    if config.analysis.follow_up_end is None:
        parts.append(dt.date.today().isoformat())
    settings = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return {
        "raw": dict(sorted(files.items())),
        "settings": settings,
        "ingest": hashlib.sha256("\n".join(ingest).encode()).hexdigest(),
    }


def _register_version(out: fs.Location) -> int | None:
    """The opt-out register's version: a run after a change to it must run."""
    register = catalog.path(out, catalog.OPT_OUT)
    return io.delta_version(register) if fs.is_dir(fs.join(register, "_delta_log")) else None


def unchanged_since(out: fs.Location, now: dict | None) -> str | None:
    """The run id of the last finished run in OUT_DIR if it was made from `now`, and its tables
    and the opt-out register are as it left them, else None."""
    state = catalog.file(out, STATE_FILE)
    if now is None or not fs.exists(state):
        return None
    last = json.loads(fs.read_text(state))
    if any(last.get(m) for m in MARKS) or {k: last.get(k) for k in now} != now:
        return None
    if last.get("delta_versions") != catalog.versions(out):
        return None
    if last.get("opt_out_version") != _register_version(out):
        return None
    if not fs.exists(catalog.file(out, (*catalog.RESULTS, MANIFEST))):
        return None
    return last["run_id"]


class Increment(NamedTuple):
    """What an incremental run adds to the last finished run's landing and bronze."""

    since: str  # the last finished run's id
    new_files: dict[str, list[str]]  # contract table -> its files that run did not read (names)
    reconciliation: dict[str, dict[str, int]]  # that run's reconciliation (bronze.reconciled)


RAW_LAYERS = ("linkage/landing", "linkage/bronze/", "linkage/quarantine")


def increment(out: fs.Location, now: dict | None) -> Increment | None:
    """The files to add to the last finished run's landing and bronze, or None when this run
    must land everything: no earlier run; a run started since that did not finish; another code
    or library version; a file it read gone or changed; its landing, bronze or quarantine
    changed since, unless the opt-out register changed too (`ld-spark forget` changes both; a
    hand edit made beside a forget is not told apart); or nothing new, unless a forget has run
    since (the tables it erased are kept)."""
    state = catalog.file(out, STATE_FILE)
    if now is None or not fs.exists(state):
        return None
    last = json.loads(fs.read_text(state))
    if any(last.get(m) for m in MARKS) or last.get("ingest") != now["ingest"] or "reconciliation" not in last:
        return None
    earlier = {name: digest for name, digest in last["raw"].items() if not name.startswith("_truth/")}
    if any(now["raw"].get(name) != digest for name, digest in earlier.items()):
        return None
    forgotten = last.get("opt_out_version") != _register_version(out)
    current = {k: v for k, v in catalog.versions(out).items() if k.startswith(RAW_LAYERS)}
    recorded = {k: v for k, v in last["delta_versions"].items() if k.startswith(RAW_LAYERS)}
    if set(current) != set(recorded) or (current != recorded and not forgotten):
        return None
    new: dict[str, list[str]] = {}
    for name in now["raw"]:
        if name not in earlier and not name.startswith("_truth/"):
            table, file_name = name.rsplit("/", 1)
            new.setdefault(table, []).append(file_name)
    if not new and not forgotten:
        return None
    return Increment(last["run_id"], new, last["reconciliation"])


# Marks in refresh.json that make the next run a whole one (neither "nothing new" nor incremental):
RUNNING = "running"  # a run started writing, and has not finished (record() clears it)
FORGETTING = "forgetting"  # `ld-spark forget` started, and has not finished (erased() clears it)
# this run's re-erasure made another person's row loaded after linkage, so it is linked next run
STALE = "stale"
MARKS = (RUNNING, FORGETTING, STALE)


def mark(out: fs.Location, name: str, on: bool = True) -> None:
    """Set (or clear) one of MARKS in the last finished run's state, if there is one."""
    state = catalog.file(out, STATE_FILE)
    if fs.exists(state):
        last = json.loads(fs.read_text(state))
        last = {**last, name: True} if on else {k: v for k, v in last.items() if k != name}
        fs.write_text(state, json.dumps(last, indent=1, sort_keys=True))


def started(out: fs.Location) -> None:
    """A run has started writing into OUT_DIR: until it finishes (record), the tables may be half
    made, so the next run may be neither "nothing new" nor incremental."""
    mark(out, RUNNING)


def erased(out: fs.Location, raw: dict[str, tuple[int, dict[str, int]]]) -> None:
    """After `ld-spark forget` finished (erase.Erased.raw: the raw rows it deleted): the last run's
    reconciliation, in `linkage/reconciliation.csv` and in the state an incremental run starts
    from, with them counted as erased (bronze.less_erased); the FORGETTING mark cleared."""
    from ld_spark import bronze
    from ld_spark.release.publish import write_csv

    state = catalog.file(out, STATE_FILE)
    if fs.exists(state):
        last = {k: v for k, v in json.loads(fs.read_text(state)).items() if k != FORGETTING}
        if "reconciliation" in last:
            last["reconciliation"] = bronze.less_erased(last["reconciliation"], raw)
        fs.write_text(state, json.dumps(last, indent=1, sort_keys=True))
    exact = catalog.file(out, catalog.RECONCILIATION_FILE)
    if raw and fs.exists(exact):
        import csv
        import io as text_io

        rows = list(csv.DictReader(text_io.StringIO(fs.read_text(exact))))
        counts = {r["source_table"]: {k: int(v) for k, v in r.items() if k != "source_table"} for r in rows}
        counts = bronze.less_erased(counts, {t: v for t, v in raw.items() if t in counts})
        write_csv(exact, bronze.RECONCILIATION_COLUMNS, [{"source_table": t, **c} for t, c in counts.items()])


def record(
    out: fs.Location,
    now: dict | None,
    run_id: str,
    reconciliation: dict[str, dict[str, int]] | None = None,
    stale: bool = False,
) -> None:
    """After a finished run: what it was made from, the versions of the tables it left, and its
    reconciliation (the next incremental run adds to it); stale: the next run is a whole one."""
    if now is None:
        fs.delete(catalog.file(out, STATE_FILE))
        return
    state = {
        **now,
        "run_id": run_id,
        "delta_versions": catalog.versions(out),
        "opt_out_version": _register_version(out),
        **({"reconciliation": reconciliation} if reconciliation is not None else {}),
        **({STALE: True} if stale else {}),
    }
    fs.write_text(catalog.file(out, STATE_FILE), json.dumps(state, indent=1, sort_keys=True))
