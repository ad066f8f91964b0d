"""Bad input, table by table: every contract table damaged the ways real extracts are damaged.

A tiny copy of the synthetic extract (the first rows of every table) is damaged one table at a
time. Row damages must end with the damaged row quarantined (rule, column, file, line) or
resolved by the contract's own rule (an exact resubmission, a later monthly submission), every
other row in the state it had in the clean copy, and `read = loaded + quarantined + duplicate +
superseded` holding to the row. File and table damages must either be read correctly or stop the
run before anything is written, with one line naming the table, the file and the column.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from ld_spark import bronze, io, pipeline
from ld_spark.contract import (
    CODES,
    DATE,
    IDENTITY_COLUMNS,
    INT,
    KEYS,
    MONTHLY_SUBMISSION_TABLES,
    REQUIRED,
    TABLES,
    TYPES,
    YN,
)
from ld_spark.errors import InputError

TRIED: set[tuple[str, str]] = set()  # (table, damage) of every test that passed, checked by the last test
STARTED: set[tuple[str, str]] = set()  # (test, table) of every test that began
STRUCTURAL = (
    "missing_column",
    "empty_file",
    "utf16_file",
    "stray_file",
    "hidden_file",
    "sub_folder",
    "repeated_column",
    "empty_table_directory",
    "missing_table_directory",
)
HARMLESS = ("extra_column", "reordered_columns", "utf8_bom", "crlf_line_ends", "header_only_file")
ROW_ALWAYS = (
    "missing_key",
    "extra_field",
    "missing_field",
    "field_over_csv_size_limit",
    "not_utf8",
    "quote_left_open",
    "exact_duplicate_row",
    "duplicate_key_different_content",
    "truncated_last_line",
    "unterminated_quote",
)


def _write(path: Path, rows: list[list[str]], tail: str = "", encoding: str = "utf-8") -> None:
    with path.open("w", newline="", encoding=encoding) as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
        handle.write(tail)


def _copy(tiny: Path, tmp_path: Path) -> Path:
    shutil.copytree(tiny, tmp_path / "raw")
    return tmp_path / "raw"


def _states(spark, raw: Path, table: str) -> tuple[dict, dict, list[dict]]:
    """{(file name, line): (state, rules broken)}, the reconciliation, and the quarantine rows."""
    kind, groups = io.check_columns(spark, raw, table)
    classified = io.read_raw(spark, table, kind, groups).transform(bronze.classify(table)).cache()
    states = {
        (Path(r[io.SOURCE_FILE]).name, r[io.LINE]): (r[bronze.STATUS], list(r[bronze.FAILURES]))
        for r in classified.select(io.SOURCE_FILE, io.LINE, bronze.STATUS, bronze.FAILURES).collect()
    }
    counts = bronze.state_counts(classified)
    quarantine = [r.asDict() for r in classified.transform(bronze.quarantined(table, "fuzz")).collect()]
    classified.unpersist()
    return states, counts, quarantine


def _other_value(table: str, column: str, value: str) -> str:
    """A different value that is still valid for the column."""
    kind = TYPES[table].get(column)
    if column in CODES.get(table, {}):
        return sorted(CODES[table][column] - {value})[0]
    if kind == DATE:
        return "2016-06-15" if value != "2016-06-15" else "2016-06-16"
    if kind == INT:
        return "7" if value != "7" else "8"
    if kind == YN:
        return "N" if value == "Y" else "Y"
    return (value or "") + "X"


def _row_damages(table: str, header: list[str]) -> list[tuple[str, str, str, object]]:
    """(damage, rule it must trip, column, how to damage a row in place) for this table."""
    types, identity = TYPES[table], IDENTITY_COLUMNS.get(table, {})
    plain = [c for c in header if c not in identity]
    dates = [c for c in plain if types.get(c) == DATE]
    ints = [c for c in plain if types.get(c) == INT]
    yns = [c for c in plain if types.get(c) == YN]
    codes = list(CODES.get(table, {}))
    key = KEYS[table][0]
    at = header.index

    def setter(column, value):
        def damage(row):
            row[at(column)] = value
            return row

        return damage

    damages = [
        ("missing_key", "missing_key", key, setter(key, "")),
        ("extra_field", "malformed_row", "*", lambda row: row + ["surplus"]),
        ("missing_field", "malformed_row", "*", lambda row: row[:-1]),
        ("field_over_csv_size_limit", "malformed_row", "*", setter(header[-1], "x" * 200_000)),
        ("not_utf8", "malformed_row", "*", None),  # written as bytes below
        ("quote_left_open", "malformed_row", "*", None),
    ]
    damages += [("missing_required_value", "missing_value", c, setter(c, "")) for c in REQUIRED.get(table, [])]
    if dates:
        damages += [
            ("impossible_date", "unparseable_date", dates[0], setter(dates[0], "2017-02-30")),
            ("date_in_another_format", "unparseable_date", dates[-1], setter(dates[-1], "03/01/2017")),
            ("year_slip", "implausible_date", dates[0], setter(dates[0], "2107-03-01")),
        ]
    if ints:
        damages.append(("text_in_integer_column", "not_an_integer", ints[0], setter(ints[0], "twelve")))
    if yns:
        damages.append(("not_y_or_n", "not_y_or_n", yns[0], setter(yns[0], "yes")))
    if codes:
        damages.append(("code_outside_list", "code_outside_list", codes[0], setter(codes[0], "ZZ9")))
    return damages


def _line(index: int) -> int:
    return index + 2  # data row 0 sits on line 2, under the header


@pytest.mark.parametrize("table", list(TABLES))
def test_damaged_rows_are_quarantined_with_reason_and_the_counts_reconcile(spark, tiny, tmp_path, table):
    STARTED.add(("rows", table))
    raw = _copy(tiny, tmp_path)
    clean, _, _ = _states(spark, raw, table)
    path = raw / table / "part-0.csv"
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    # Damage rows that loaded cleanly, so each damage is the only thing wrong with its row.
    loaded = [i for i in range(len(rows)) if clean[("part-0.csv", _line(i))][0] == bronze.LOADED]
    keys = [tuple(r[header.index(k)] for k in KEYS[table]) for r in rows]
    damages = _row_damages(table, header)
    assert len(loaded) >= len(damages) + 2, table
    expected: dict[int, tuple[str, str | None]] = {}  # line -> (state, rule:column it must carry)
    byte_damages = {}  # line -> name of a damage written as bytes below
    tried = set()
    for i, (name, rule, column, damage) in zip(loaded, damages):
        if damage is None:
            byte_damages[_line(i)] = name
        else:
            rows[i] = damage(list(rows[i]))
        expected[_line(i)] = (bronze.QUARANTINED, f"{rule}:{column}")
        tried.add((table, name))
    # Appended: an exact resubmission of one row, and a key reused with different content.
    twin, reused = loaded[len(damages)], loaded[len(damages) + 1]
    key_columns = KEYS[table] + (["UniqMonthID"] if table in MONTHLY_SUBMISSION_TABLES else [])
    column = [c for c in header if c not in key_columns and c not in IDENTITY_COLUMNS.get(table, {})][-1]
    changed = list(rows[reused])
    changed[header.index(column)] = _other_value(table, column, changed[header.index(column)])
    rows += [list(rows[twin]), changed]
    copy_line, changed_line = _line(len(rows) - 2), _line(len(rows) - 1)
    tried.update({(table, "exact_duplicate_row"), (table, "duplicate_key_different_content")})
    expected[copy_line] = (bronze.DUPLICATE, None)
    if table in MONTHLY_SUBMISSION_TABLES:  # the same month sent again: the later line is the record
        expected[_line(reused)], expected[changed_line] = (bronze.SUPERSEDED, None), (bronze.LOADED, None)
    else:  # cannot be resolved: every version quarantined
        expected[_line(reused)] = expected[changed_line] = (bronze.QUARANTINED, f"duplicate_key:{KEYS[table][0]}")
    # A truncated last line: the write stopped part-way through a row.
    expected[_line(len(rows))] = (bronze.QUARANTINED, "malformed_row:*")
    tried.add((table, "truncated_last_line"))
    _write(path, [header, *rows], tail=",".join(rows[0])[:8])
    lines = path.read_bytes().split(b"\n")
    for line, name in byte_damages.items():  # a Latin-1 e-acute; a quote that opens a field and never closes
        lines[line - 1] = lines[line - 1].replace(b",", b",\xe9" if name == "not_utf8" else b',"', 1)
    path.write_bytes(b"\n".join(lines))
    # A second file whose only row opens a quote it never closes.
    _write(raw / table / "part-1.csv", [header], tail='"' + ",".join(rows[0])[:6])
    tried.add((table, "unterminated_quote"))

    states, counts, quarantine = _states(spark, raw, table)
    assert counts["read"] == len(rows) + 2 == len(states)
    assert counts["read"] == sum(counts[s] for s in bronze.STATES)
    for line, (state, rule) in expected.items():
        got_state, got_rules = states[("part-0.csv", line)]
        assert got_state == state and (rule is None or rule in got_rules), (
            table,
            line,
            got_state,
            got_rules,
            state,
            rule,
        )
    assert states[("part-1.csv", 2)][0] == bronze.QUARANTINED and "malformed_row:*" in states[("part-1.csv", 2)][1]
    # Every other row is as in the clean copy, except earlier monthly submissions of a damaged
    # record: with the latest one quarantined, the one before it is the record again.
    touched = {keys[i] for i in loaded[: len(damages) + 2]}
    for (name, line), was in clean.items():
        if line not in expected and not (table in MONTHLY_SUBMISSION_TABLES and keys[line - 2] in touched):
            assert states[(name, line)] == was, (table, line)
    assert len(quarantine) == counts[bronze.QUARANTINED]
    for q in quarantine:  # each says where it came from and why
        assert q["source_file"].endswith(".csv") and q["line"] and q["rule"] and q["column"] and q["record"]
    assert all(q["row_fault"] for q in quarantine if q["rule"] == "malformed_row")
    TRIED.update(tried)


def _one_line_error(spark, config, raw: Path, tmp_path: Path, *fragments: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        pipeline.run(spark, config, raw=str(raw), out=str(out))
    message = str(err.value)
    assert "\n" not in message and all(f in message for f in fragments), message
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("table", list(TABLES))
def test_structural_damage_stops_the_run_before_writing_with_one_line(spark, config, tiny, tmp_path, table):
    STARTED.add(("structure", table))
    folder = _copy(tiny, tmp_path) / table
    part = folder / "part-0.csv"
    with part.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    raw = folder.parents[len(Path(table).parts) - 1]
    dropped = TABLES[table][-1]
    keep = [i for i, c in enumerate(header) if c != dropped]

    _write(part, [[r[i] for i in keep] for r in [header, *rows]])
    _one_line_error(spark, config, raw, tmp_path, f"table {table}", str(part), f"column {dropped}")
    part.write_bytes(b"")
    _one_line_error(spark, config, raw, tmp_path, f"table {table}", str(part), "empty")
    _write(part, [header, *rows], encoding="utf-16")
    _one_line_error(spark, config, raw, tmp_path, str(part), "not UTF-8")
    _write(part, [header, *rows])
    (folder / "notes.txt").write_text("sent by the data team")
    _one_line_error(spark, config, raw, tmp_path, f"table {table}", "notes.txt")
    (folder / "notes.txt").unlink()
    for hidden in (folder / ".part-9.csv", folder / "_part-9.csv"):
        shutil.copy(part, hidden)
        _one_line_error(spark, config, raw, tmp_path, f"table {table}", str(hidden))
        hidden.unlink()
    (folder / "archive").mkdir()
    _one_line_error(spark, config, raw, tmp_path, f"table {table}", str(folder / "archive"))
    (folder / "archive").rmdir()
    repeated = TABLES[table][0]
    _write(part, [header + [repeated], *[r + [r[header.index(repeated)]] for r in rows]])
    _one_line_error(spark, config, raw, tmp_path, f"table {table}", str(part), f"column {repeated}")
    part.unlink()
    _one_line_error(spark, config, raw, tmp_path, f"table {table}", "holds no files")
    folder.rmdir()
    _one_line_error(spark, config, raw, tmp_path, f"table {table}", "is missing")
    TRIED.update((table, d) for d in STRUCTURAL)


@pytest.mark.parametrize("table", list(TABLES))
def test_harmless_layout_changes_are_read_as_the_clean_file(spark, tiny, tmp_path, table):
    """Extra columns, reordered columns, a UTF-8 byte-order mark, CRLF line ends, a header-only file."""
    STARTED.add(("layout", table))
    raw = _copy(tiny, tmp_path)
    clean, counts, _ = _states(spark, raw, table)
    part = raw / table / "part-0.csv"
    with part.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    order = list(reversed(range(len(header))))
    changed = [[r[i] for i in order] + ["extra"] for r in [header, *rows]]
    changed[0][-1] = "LOCAL_EXTRA_COLUMN"
    with part.open("w", newline="", encoding="utf-8-sig") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(changed)
    _write(raw / table / "part-1.csv", [header])
    states, after, _ = _states(spark, raw, table)
    assert states == clean and after == counts
    TRIED.update((table, d) for d in HARMLESS)


def test_every_table_passed_every_kind_of_damage():
    """Last in the file: every table came through the structural, harmless and row damages that
    every table gets (TRIED holds only the cases of tests that passed)."""
    if len(STARTED) < 3 * len(TABLES):
        pytest.skip("checks the whole file's run: run it with the tests above")
    kinds = {damage for _, damage in TRIED}
    print(f"\nbad input: {len(kinds)} kinds of damage, {len(TRIED)} (table, damage) cases passed")
    missing = [(t, d) for t in TABLES for d in (*STRUCTURAL, *HARMLESS, *ROW_ALWAYS) if (t, d) not in TRIED]
    assert not missing, missing[:10]
