"""Nothing new, nothing run: a rerun on the same raw files, settings and code as the last finished
run in OUT_DIR, whose tables no one has changed since, stops after hashing the files.

After each finished run, `linkage/refresh.json` records what it was made from: every raw file's
SHA-256, one digest of the settings (the config, the code of `ld_spark/`, and a keyed hash of the
pseudonymisation key, never the key), the run id and the Delta version of every table it left.
The next run compares. Anything different (a file added, changed or gone; another setting; a new
version of the code; a table written since, by `ld-spark forget` for instance) and it runs whole.

Raw folders under a URL are not hashed (it would mean reading every byte through the driver):
runs on them always run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ld_spark import catalog, fs
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


def made_from(raw: fs.Location, layouts: dict, config: Config, key: bytes) -> dict | None:
    """What a run on `raw` is made from (layouts: io.check_tables' tables), or None for a raw
    folder under a URL."""
    if fs.is_url(raw):
        return None
    files = {
        f"{table}/{Path(str(f)).name}": file_digest(Path(str(f)))
        for table, (_, groups) in sorted(layouts.items())
        for group in groups.values()
        for f in group
    }
    code = hashlib.sha256()
    for source in sorted(PACKAGE.rglob("*.py")):
        code.update(str(source.relative_to(PACKAGE)).encode() + b"\0" + source.read_bytes())
    settings = hashlib.sha256(
        "\n".join([settings_json(config), code.hexdigest(), hmac_hex(key, "ld-spark refresh")]).encode()
    ).hexdigest()
    return {"raw": dict(sorted(files.items())), "settings": settings}


def unchanged_since(out: fs.Location, now: dict | None) -> str | None:
    """The run id of the last finished run in OUT_DIR if it was made from `now` and its tables are
    as it left them, else None."""
    state = catalog.file(out, STATE_FILE)
    if now is None or not fs.exists(state):
        return None
    last = json.loads(fs.read_text(state))
    if {k: last.get(k) for k in now} != now or last.get("delta_versions") != catalog.versions(out):
        return None
    if not fs.exists(catalog.file(out, (*catalog.RESULTS, MANIFEST))):
        return None
    return last["run_id"]


def record(out: fs.Location, now: dict | None, run_id: str) -> None:
    """After a finished run: what it was made from, and the versions of the tables it left."""
    if now is None:
        fs.delete(catalog.file(out, STATE_FILE))
        return
    state = {**now, "run_id": run_id, "delta_versions": catalog.versions(out)}
    fs.write_text(catalog.file(out, STATE_FILE), json.dumps(state, indent=1, sort_keys=True))
