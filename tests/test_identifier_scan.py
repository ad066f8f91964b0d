"""No direct identifier of the input may leave the linkage layer.

Every identifier the synthetic extract holds (each identifier column of each identifiable raw
table, unique values per person, as recorded and in the forms a run could write them) is searched
for in every analysis-layer Delta table, every file under results/, the MLflow run (params,
metrics, tags, artifacts), everything the run printed and its log file under logs/ (Spark's
own log: the run is a separate process); and in everything printed and logged by a run that
fails on bad input full of identifiers. The pseudonymisation key, given through the environment, is searched for too.

Text is split into words on anything not a letter or digit, and an identifier is found when its
own words appear in a row: `nhs 9434765919 invalid` holds 9434765919, `record for SMITHSON
failed` holds Smithson, `LS6 2AB` is found written `LS62AB`. The scanner is tested on such
sentences first: one that could find nothing would pass every scan.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import SESSION_KEY, cli_run

from ld_spark import catalog, io, link
from ld_spark.contract import IDENTITY_COLUMNS, TABLES

REPO = Path(__file__).resolve().parents[1]
WORD = re.compile(r"[A-Za-z0-9]+")
# Shorter values (Lee, Cox, a sector such as LS6 2, a date's day) are ordinary words and numbers
# of any log: searching for them would fail every scan, not find leaks.
MIN_CHARS = 5

# Identifier columns of each identifiable raw table: the contract's identity columns, plus the
# identifiers bronze leaves as they are: the PNC's CRO number, NDTMS's CLIENTID (the agency's id
# for the person, the linkage's `client`) and the MHSDS/IAPT LocalPatientId.
IDENTIFIER_COLUMNS: dict[str, dict[str, str]] = {
    **IDENTITY_COLUMNS,
    "pnc/offences": {**IDENTITY_COLUMNS["pnc/offences"], "cro_number": "cro"},
    "ndtms/episodes": {**IDENTITY_COLUMNS["ndtms/episodes"], "CLIENTID": "client"},
    "mhsds/mhs001_mpi": {**IDENTITY_COLUMNS["mhsds/mhs001_mpi"], "LocalPatientId": "local"},
    "iapt/ids001_mpi": {**IDENTITY_COLUMNS["iapt/ids001_mpi"], "LocalPatientId": "local"},
}


def written_forms(kind: str, value: str) -> set[str]:
    """A recorded identifier and the forms a run could write it in (bronze's normal forms included)."""
    value = value.strip()
    forms = {value, value.upper()}
    if kind == "name":  # bronze: upper case, apostrophes and dots dropped, other non-letters a space
        forms.add(re.sub(r"[^A-Z]+", " ", re.sub(r"['.]", "", value.upper())).strip())
    elif kind == "postcode":
        compact = re.sub(r"\s+", "", value.upper())
        forms |= {compact, f"{compact[:-3]} {compact[-3:]}"}
    elif kind == "nhs":
        digits = re.sub(r"[\s-]", "", value)
        forms |= {digits, f"{digits[:3]} {digits[3:6]} {digits[6:]}"}
    elif kind == "dob":
        try:
            born = dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            forms |= {born.isoformat(), born.strftime("%d/%m/%Y"), born.strftime("%Y%m%d")}
    return {f for f in forms if len("".join(WORD.findall(f))) >= MIN_CHARS}


def own_words() -> set[str]:
    """Words the run's own code and config write (`Wilson 95% interval`, `price per day`): finding
    one is no evidence of a leak, so a name written exactly as such a word is not searched for
    (today Wilson in any case, and price, cross, field, white in lower case). The generator, which
    holds every name it draws, is not the run."""
    files = [*(p for p in (REPO / "ld_spark").rglob("*.py") if "synth" not in p.parts), *(REPO / "conf").glob("*.yaml")]
    return {word for f in files for word in WORD.findall(f.read_text())}


def identifiers(raw: Path) -> set[str]:
    """Every identifier of every identifier column of every identifiable table under raw."""
    values: set[str] = set()
    for table, columns in IDENTIFIER_COLUMNS.items():
        files = sorted((raw / table).glob("*.csv"))
        assert files, f"no CSV files for {table} under {raw}"
        for f in files:
            df = pd.read_csv(f, dtype=str, usecols=list(columns), keep_default_na=False)
            for column, kind in columns.items():
                for value in df[column].unique():
                    values |= written_forms(kind, value)
    return values - own_words()


def found_in_text(text: str, needles: set[str]) -> set[str]:
    """The needles whose words appear in a row among the text's words."""
    wanted = {tuple(WORD.findall(n)): n for n in needles}
    wanted.pop((), None)
    words = WORD.findall(text)
    found = set()
    for size in {len(w) for w in wanted}:
        for start in range(len(words) - size + 1):
            hit = wanted.get(tuple(words[start : start + size]))
            if hit is not None:
                found.add(hit)
    return found


def test_scanner_finds_identifiers_inside_sentences():
    needles = written_forms("nhs", "9434765919") | written_forms("name", "Smithson")
    assert found_in_text("nhs 9434765919 invalid", needles) == {"9434765919"}
    assert found_in_text("record for SMITHSON failed", needles) == {"SMITHSON"}
    assert found_in_text("row 12: nhs=943 476 5919, check digit", needles) == {"943 476 5919"}
    assert found_in_text("Smithsonian 19434765919 smithson", needles) == set()  # whole words only


def test_scanner_finds_every_written_form():
    cases = [
        ("name", "O'Brien", "surname OBRIEN not unique"),
        ("name", "Smith-Jones", "(Smith Jones)"),
        ("postcode", "ls6 2ab", "postcode LS62AB;"),
        ("postcode", "LS62AB", "at LS6 2AB."),
        ("dob", "1980-05-06", "born 06/05/1980 |"),
        ("dob", "1980-05-06", "dob=19800506"),
        ("pnc", "2003/0012345K", "pnc 2003/0012345K"),
        ("cro", "012345/07X", "cro:012345/07X"),
        ("client", "LP0K3F9ZQ2", "'AG01|LP0K3F9ZQ2'"),
    ]
    for kind, value, text in cases:
        assert found_in_text(text, written_forms(kind, value)), (kind, value, text)


def test_scan_covers_every_identity_column_the_linkage_reads():
    """A column the linkage reads as an identity (sex aside) is scanned, so a new source cannot
    slip past. NDTMS's agency code only qualifies its client id: it identifies no one."""
    for source, (table, _, columns) in link.identity.SOURCES.items():
        read = {
            c
            for name, expr in columns.items()
            if name != "sex"
            for c in re.findall(r"[A-Za-z_]+", expr)
            if c in TABLES[table] and c != "AGNCY"
        }
        assert read <= set(IDENTIFIER_COLUMNS[table]), (source, read - set(IDENTIFIER_COLUMNS[table]))


KEY = SESSION_KEY  # every run of the session is given it through the environment


@pytest.fixture(scope="module")
def scanned_run(run_config, small_extract, finished_run_printed):
    """The session's finished run (a process of its own): what it printed, with its log file
    (the JVM's output and the libraries' logs, ld_spark/console.py)."""
    raw, _ = small_extract
    out, _, printed = finished_run_printed
    return raw, out, run_config, printed + logged(out)


def logged(out: Path) -> str:
    """Everything a run wrote to its log folder (there must be some: the JVM's start-up lines)."""
    logs = [f for f in (out / "logs").rglob("*") if f.is_file()]
    assert logs, f"no log under {out / 'logs'}"
    return "\n".join(f.read_bytes().decode("utf-8", errors="ignore") for f in logs)


def test_no_identifier_reaches_analysis_tables_results_mlflow_or_logs(spark, scanned_run, tmp_path):
    import mlflow

    raw, out, run_config, printed = scanned_run
    needles = identifiers(raw)
    assert len(needles) > 1000
    needles.add(KEY)
    print(f"\nidentifier scan: {len(needles)} values searched for")

    analysis_tables = [p for p in (out / "analysis").iterdir() if (p / "_delta_log").exists()]
    assert analysis_tables, "no analysis-layer tables to scan"
    for table in analysis_tables:
        df = io.read_delta(spark, table)
        text = "\n".join(",".join(str(v) for v in row) for row in df.collect())
        assert not found_in_text(text, needles), table

    for f in (out / "results").rglob("*"):
        if f.is_file():
            text = f.read_bytes().decode("utf-8", errors="ignore")
            assert not found_in_text(text, needles), f

    mlflow.set_tracking_uri(run_config.mlflow.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[run_config.mlflow.experiment], output_format="list")
    assert runs
    for run in runs:  # the finished run, and any other run of the session in the same store
        data = run.data
        text = "\n".join(
            [*map(str, data.params.items()), *map(str, data.metrics.items()), *map(str, data.tags.items())]
        )
        assert not found_in_text(text, needles)
        artifacts = Path(
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / run.info.run_id))
        )
        files = [f for f in artifacts.rglob("*") if f.is_file()]
        assert run.info.status != "FINISHED" or any(f.name == "splink_model.json" for f in files)
        for f in files:
            assert not found_in_text(f.read_bytes().decode("utf-8", errors="ignore"), needles), f

    assert not found_in_text(printed, needles)


@pytest.fixture(scope="module")
def failed_run(small_extract, tmp_path_factory):
    """`ld-spark run` on an extract whose referrals file lost its header: its first line is a
    referral with every identifier filled in, the line a careless error message would quote."""
    source, _ = small_extract
    raw = tmp_path_factory.mktemp("bad") / "raw"
    shutil.copytree(source, raw)
    first = sorted((raw / "ld_referrals").glob("*.csv"))[0]
    referrals = pd.read_csv(first, dtype=str, keep_default_na=False)
    quotable = next(
        i
        for i, row in referrals.iterrows()
        if all(written_forms(kind, row[c]) for c, kind in IDENTITY_COLUMNS["ld_referrals"].items())
    )
    referrals = pd.concat([referrals.loc[[quotable]], referrals.drop(index=quotable)])
    referrals.to_csv(first, index=False, header=False)
    out = tmp_path_factory.mktemp("bad_out")
    done = cli_run(raw, out, f"sqlite:///{tmp_path_factory.mktemp('bad_mlflow') / 'mlflow.db'}")
    return source, referrals.iloc[0], done, out


def test_no_identifier_reaches_the_output_of_a_run_failing_on_bad_input(failed_run):
    raw, first_row, done, out = failed_run  # raw: the intact extract, the same rows with their header
    errors = [line for line in done.stderr.splitlines() if line.startswith("ld-spark: error:")]
    assert done.returncode == 2 and len(errors) == 1 and "ld_referrals" in errors[0], done.stderr[-3000:]
    needles = identifiers(raw)
    for column, kind in IDENTITY_COLUMNS["ld_referrals"].items():  # the quotable line's identifiers are sought
        assert written_forms(kind, first_row[column]) and written_forms(kind, first_row[column]) <= needles, column
    assert not found_in_text(done.stdout + done.stderr + logged(out), needles | {KEY})


def test_analysis_person_table_holds_only_key_year_of_birth_and_sex(spark, scanned_run):
    _, out, _, _ = scanned_run
    persons = io.read_delta(spark, catalog.path(out, catalog.PERSONS))
    assert persons.columns == ["person_key", "year_of_birth", "sex"]
    linked = io.read_delta(spark, catalog.path(out, catalog.RECORD_PERSON))
    assert persons.count() == linked.select("person_key").dropna().distinct().count()
    assert persons.count() == persons.select("person_key").distinct().count()
