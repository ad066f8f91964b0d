"""Cut a synthetic extract where the real datasets began, to see what a run makes of the months before.

    .venv/bin/python benchmarks/late_sources.py --raw RAW_DIR --out CUT_DIR [--start iapt=2012-04 ...]

Real national extracts do not all reach back to the start of the series: the IAPT data set
began in April 2012, and MHSDS in January 2016 (its predecessors are other data sets). A
source's monthly submissions then start at that month, and hold every record active from then:
a referral received in 2014 and still open in 2016 is in the 2016 submission with its 2014
date. This copies RAW_DIR to CUT_DIR and, in each cut source, keeps the rows submitted in that
month or later (UniqMonthID), plus the referrals and MHA periods still open at its start, and
the referrals with a contact after it (their latest earlier row, as submitted in the first
month), and the patient records (MPI) they hang from; contacts submitted before the start are gone (a contact resubmitted in a later month
stays, with its earlier date: the job's start is where the months fill, not the first record). Every other table and `_truth/` stay as they are.
Defaults: iapt=2012-04 mhsds=2016-01. Prints the rows kept per table.

Compare `ld-spark run` on RAW_DIR and CUT_DIR (benchmarks/results/late_sources.md).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from ld_spark.synth import calendar

DEFAULT_STARTS = ["iapt=2012-04", "mhsds=2016-01"]


def uniq_month_id(month: str) -> int:
    """NHS Digital's UniqMonthID of 'yyyy-MM' (April 2018 = 1417), as the generator numbers them."""
    year, number = (int(part) for part in month.split("-"))
    return int(calendar.uniq_month_id(year * 12 + number - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start", nargs="*", default=DEFAULT_STARTS, help="SOURCE=yyyy-MM, SOURCE iapt or mhsds")
    args = parser.parse_args()
    if args.out.resolve() == args.raw.resolve() or args.raw.resolve() in args.out.resolve().parents:
        parser.error("--out must be a new folder, not RAW_DIR or inside it")
    if not all(s.split("=")[0] in ("iapt", "mhsds") for s in args.start):
        parser.error("--start: only iapt and mhsds are monthly submissions (UniqMonthID)")
    starts = {source: (month, uniq_month_id(month)) for source, month in (s.split("=") for s in args.start)}

    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(args.raw, args.out)
    for source, (month, first_id) in sorted(starts.items()):
        tables = {p.name: p for p in (args.out / source).iterdir() if p.is_dir()}
        kept = {
            name: cut(read(folder), month, first_id, *OPEN_AT_START.get(name[3:], (None, None)))
            for name, folder in tables.items()
        }
        # A referral with a contact from the start on was active then, whatever its earlier row
        # said (the generator's background contacts do not keep to their referral's dates).
        contacts = next(rows for name, rows in kept.items() if name.endswith("201_care_contact"))
        referrals = next(name for name in tables if name.endswith("101_referral"))
        earlier = latest_before(read(tables[referrals]), ["ServiceRequestId"], first_id)
        ids = earlier["ServiceRequestId"]
        active_referrals = earlier[
            ids.isin(contacts["ServiceRequestId"]) & ~ids.isin(kept[referrals]["ServiceRequestId"])
        ]
        kept[referrals] = pd.concat([kept[referrals], active_referrals.assign(UniqMonthID=str(first_id))])
        # A patient with a referral or MHA period from the start on is in the MPI from then too
        # (its latest earlier row, submitted again).
        active = pd.concat(
            [rows[["LocalPatientId", "OrgIDProv"]] for name, rows in kept.items() if name[3:] in OPEN_AT_START]
        )
        for name, folder in tables.items():
            rows = read(folder)
            if name.endswith("_mpi"):
                before = latest_before(rows, ["LocalPatientId", "OrgIDProv"], first_id)
                patients = before.merge(active.drop_duplicates(), on=["LocalPatientId", "OrgIDProv"])
                kept[name] = pd.concat([kept[name], patients.assign(UniqMonthID=str(first_id))])
            write(folder, kept[name])
            print(
                f"{source}/{name}: {len(kept[name]):,d} of {len(rows):,d} rows kept (start {month}, UniqMonthID {first_id})"
            )


# Records that stay open across months: table (without its source's 3-letter prefix) -> its key
# and the date that closes it (blank: still open).
OPEN_AT_START = {
    "101_referral": ("ServiceRequestId", "ServDischDate"),
    "401_mha_period": ("MHActLegalStatusClassPeriodId", "EndDateMHActLegalStatusClass"),
}


def read(folder: Path) -> pd.DataFrame:
    return pd.concat(
        [pd.read_csv(f, dtype=str, keep_default_na=False) for f in sorted(folder.glob("*.csv"))], ignore_index=True
    )


def write(folder: Path, rows: pd.DataFrame) -> None:
    for f in folder.glob("*.csv"):
        f.unlink()
    rows.to_csv(folder / "part-00000.csv", index=False)


def latest_before(rows: pd.DataFrame, key: list[str], first_id: int) -> pd.DataFrame:
    """Each record's latest row submitted before the month `first_id`."""
    ids = pd.to_numeric(rows["UniqMonthID"], errors="coerce")
    before = rows[ids < first_id].assign(_id=ids[ids < first_id])
    return before.sort_values("_id").drop_duplicates(key, keep="last").drop(columns="_id")


def cut(rows: pd.DataFrame, month: str, first_id: int, key: str | None, closed: str | None) -> pd.DataFrame:
    """The rows submitted from `first_id` on, and (with a key) each record open at the start as
    its latest earlier row said, moved into the first month's submission."""
    kept = rows[pd.to_numeric(rows["UniqMonthID"], errors="coerce") >= first_id]
    if key is None:
        return kept
    before = latest_before(rows, [key], first_id)
    still_open = before[(before[closed] == "") | (before[closed] >= f"{month}-01")]
    return pd.concat([kept, still_open.assign(UniqMonthID=str(first_id))], ignore_index=True)


if __name__ == "__main__":
    main()
