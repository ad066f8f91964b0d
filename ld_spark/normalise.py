"""Normalisation of identity values, once, in named column expressions (used by bronze).

A value that cannot be an identifier of the kind becomes null; it never costs the row.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

PLACEHOLDER_DOBS = ("1900-01-01", "1800-01-01")
NO_FIXED_ABODE = ("NF11NF", "ZZ993VZ")
POSTCODE = r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$"
SECTOR = r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9]$"
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
PNC_ID = r"^[0-9]{4}/[0-9]{7}[A-Z]$"


def _blank_to_null(c: Column) -> Column:
    return F.when(c == "", None).otherwise(c)


def iso_date(c: Column) -> Column:
    """`YYYY-MM-DD` that is a real calendar date, else null."""
    parsed = F.to_date(F.try_to_timestamp(c, F.lit("yyyy-MM-dd")))
    return F.when(c.rlike(ISO_DATE), parsed)


def name(c: Column) -> Column:
    """Upper case letters and single spaces: hyphens become spaces, apostrophes and dots go."""
    upper = F.upper(F.trim(c))
    letters = F.regexp_replace(F.regexp_replace(upper, r"['.]", ""), r"[^A-Z]+", " ")
    return _blank_to_null(F.trim(letters))


def initial(c: Column) -> Column:
    first = F.upper(F.substring(F.trim(c), 1, 1))
    return F.when(first.rlike("^[A-Z]$"), first)


def dob(c: Column) -> Column:
    """A date of birth, with the systems' placeholder dates treated as unknown."""
    return F.when(~F.trim(c).isin(*PLACEHOLDER_DOBS), iso_date(F.trim(c)))


def postcode(c: Column) -> Column:
    """`LS6 2AB` form; no-fixed-abode codes and anything not shaped like a postcode become null."""
    compact = F.regexp_replace(F.upper(c), r"\s+", "")
    spaced = F.regexp_replace(compact, r"^(.+)([0-9][A-Z]{2})$", "$1 $2")
    return F.when(compact.rlike(POSTCODE) & ~compact.isin(*NO_FIXED_ABODE), spaced)


def sector(c: Column) -> Column:
    """Postcode sector `LS6 2` (NDTMS); the no-fixed-abode sectors become null."""
    upper = F.regexp_replace(F.upper(F.trim(c)), r"\s+", " ")
    fixed = F.regexp_replace(upper, r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9])$", "$1 $2")
    return F.when(fixed.rlike(SECTOR) & ~fixed.isin("NF1 1", "ZZ99 3"), fixed)


def nhs_number(c: Column) -> Column:
    """Ten digits passing the mod-11 check, else null."""
    digits = F.regexp_replace(c, r"[\s-]", "")
    weighted = sum(F.substring(digits, i + 1, 1).try_cast("int") * (10 - i) for i in range(9))
    check = F.lit(11) - weighted % 11
    check = F.when(check == 11, 0).otherwise(check)
    valid = digits.rlike(r"^[0-9]{10}$") & (check != 10) & (check == F.substring(digits, 10, 1).try_cast("int"))
    return F.when(valid, digits)


def pnc_id(c: Column) -> Column:
    value = F.upper(F.trim(c))
    return F.when(value.rlike(PNC_ID), value)


BY_KIND = {
    "name": name,
    "initial": initial,
    "dob": dob,
    "postcode": postcode,
    "sector": sector,
    "nhs": nhs_number,
    "pnc": pnc_id,
}
